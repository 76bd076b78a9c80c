import Foundation
import JSONRPC
import Logging
import PyKernelSupport
import Synchronization
import _PyKernelProcessShims

/// How a worker process ended.
public enum WorkerExit: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)
    /// Ended, but its status was lost with the fork server that forked (and would have reaped) it.
    case unknown

    public var description: String {
        switch self {
        case .unknown: return "ended (its exit status is unknown: the fork server that started it had ended)"
        case .exited(let code): return "exited with code \(code)"
        case .signaled(let number): return "was killed by signal \(number)\(Self.signalNames[number].map { " (\($0))" } ?? "")"
        }
    }

    /// The names of the signals whose default action ends a process (Linux numbers).
    private static let signalNames: [Int32: String] = [
        SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
        SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1",
        SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2", SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM",
        SIGSTKFLT: "SIGSTKFLT", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ", SIGVTALRM: "SIGVTALRM",
        SIGPROF: "SIGPROF", SIGIO: "SIGIO", SIGPWR: "SIGPWR", SIGSYS: "SIGSYS",
    ]
}

/// The C environment a worker (or fork server) starts with besides the server's, for its own
/// runtime only: Python's `os.environ`, and so user code and its subprocesses, never see it.
///
/// - `SWIFT_BACKTRACE=enable=no`: Swift's crash backtracer would hold a crashing worker for most
///   of a second, and its report would go into the run's (lost) capture.
/// - `MALLOC_ARENA_MAX=1`: each thread arena would reserve 64 MiB of address space, which a
///   context's memory limit (`RLIMIT_AS`) counts.
///
/// Both are read once, as the process starts (the Swift runtime's backtracer settings, glibc's
/// malloc tunables); ``forget()`` then removes them before Python copies the environment. A
/// variable the server's own environment sets keeps the server's value, and code sees it.
public enum WorkerEnvironment {
    /// Names the variables ``add(to:)`` added (comma-separated), for ``forget()``.
    static let marker = "PYKERNEL_WORKER_ADDED_ENVIRONMENT"

    static let settings = [("SWIFT_BACKTRACE", "enable=no"), ("MALLOC_ARENA_MAX", "1")]

    /// Adds to `environment` (the server's) the settings it does not set, and the marker naming them.
    static func add(to environment: inout [String: String]) {
        let added = settings.filter { environment[$0.0] == nil }
        for (name, value) in added { environment[name] = value }
        if !added.isEmpty { environment[marker] = added.map(\.0).joined(separator: ",") }
    }

    /// Removes from this process's C environment the variables its spawner added (and the
    /// marker): call first thing in a worker or fork server, before Python starts. Nothing in
    /// a process the marker does not name them for.
    public static func forget() {
        guard let names = getenv(marker).map({ String(cString: $0) }) else { return }
        for name in names.split(separator: ",") where settings.contains(where: { $0.0 == name }) {
            unsetenv(String(name))
        }
        unsetenv(marker)
    }
}

/// What a worker answered to a request: its result, its error, or nothing because it ended.
enum WorkerReply: Sendable {
    case result(JSONValue)
    case error(JSONValue)
    case ended
}

/// One `pykernel serve` worker process on pipes, in a process group of its own (spawned by this
/// process, or forked by the fork server), and a JSON-RPC client of it.
///
/// A thread of its own (`pykernel-worker`) reads the worker's stdout (protocol lines), its
/// stderr (the last lines are kept for crash reports) and a pidfd; callbacks for notifications
/// and replies run on that thread. When the worker exits, every request still waiting is
/// answered ``WorkerReply/ended``, its process group is killed (no grandchild stays) and it is reaped.
final class Worker: Sendable {
    /// A waiting request's callbacks.
    struct Pending: Sendable {
        /// A notification whose `params.request_id` is this request's id (method, other params).
        let notification: @Sendable (String, JSONObject) -> Void
        let reply: @Sendable (WorkerReply) -> Void
        /// After notifications: the reader has handled every line it has read so far.
        var caughtUp: (@Sendable () -> Void)? = nil
    }

    private struct State {
        var nextID: Int64 = 1
        var pending: [Int64: Pending] = [:]
        var exit: WorkerExit?
        var stderrTail: [String] = []
        var inputClosed = false
        /// Set before the worker is reaped: its pid (and group id) may be reused after that.
        var reaping = false
    }

    let pid: pid_t
    private let input: Int32
    /// The worker's pidfd (-1 once closed, after it ended).
    private let pidfd: Mutex<Int32>
    /// The fork server that forked the worker and reaps it (`nil`: this process spawned it).
    let forkServer: ForkServer?
    private let state = Mutex(State())
    /// The worker's stdin (non-blocking): whether it is still open (held while writing, so a
    /// closed and maybe reused descriptor number is never written to), the requests held for one
    /// write, and what the pipe had no room for.
    ///
    /// A write never waits for the worker: what does not fit in the pipe waits in `backlog`, which
    /// a write source (`drain`, on ``inputQueue``) writes once the pipe has room, and everything
    /// sent later goes after it, so the worker reads its requests (runs, interrupts, input
    /// answers) in the order they were sent. A worker that stops reading (stopped by SIGSTOP)
    /// holds up no other worker and no thread of the server: only its own requests wait.
    private struct Input {
        var open = true
        /// Requests sent with `hold` and not written yet (written before any later request).
        var held: [UInt8] = []
        /// Bytes the pipe had no room for, from `backlogStart` on (written before anything later).
        var backlog: [UInt8] = []
        var backlogStart = 0
        /// Writes the backlog when the pipe has room; `nil` while there is none. It holds the
        /// worker until it is cancelled (the backlog written, or the input closed).
        var drain: (any DispatchSourceWrite)?
        /// Write sources cancelled whose cancel handler has not run yet: the descriptor is closed
        /// only once none is (a source must not outlive its descriptor).
        var cancelling = 0
        /// Closed (by the last cancel handler, when sources were still cancelling).
        var closed = false
    }
    private let inputState = Mutex(Input())
    /// The queue of every worker's write sources (their handlers only write what fits, never wait).
    private static let inputQueue = DispatchQueue(label: "pykernel-worker-input")
    private let onExit: @Sendable (Worker) -> Void
    private let logger: Logger
    /// Lines of stderr kept for a crash report.
    private static let stderrLinesKept = 20
    /// A protocol line longer than this ends the worker (it is not a `pykernel serve` then).
    private static let maxLineLength = 256 << 20

    /// Starts `executable arguments...` in a new process group with pipes as descriptors 0, 1, 2.
    convenience init(executable: String, arguments: [String], logger: Logger, onExit: @escaping @Sendable (Worker) -> Void) throws {
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        guard pk_pipe_cloexec(&toChild) == 0, pk_pipe_cloexec(&fromChild) == 0, pk_pipe_cloexec(&errors) == 0 else {
            let reason = String(cString: strerror(errno))
            for fd in toChild + fromChild + errors where fd >= 0 { close(fd) }
            throw WorkerError.spawn("pipe: \(reason)")
        }
        let child: pid_t
        do {
            child = try Self.spawn(executable, arguments, descriptors: [toChild[0], fromChild[1], errors[1]])
        } catch {
            for fd in toChild + fromChild + errors { close(fd) }
            throw error
        }
        close(toChild[0]); close(fromChild[1]); close(errors[1])
        self.init(pid: child, input: toChild[1], output: fromChild[0], errors: errors[0], pidfd: pk_pidfd_open(child),
                  forkServer: nil, logger: logger, onExit: onExit)
    }

    /// Adopts a running worker: its pid, the write end of its stdin, the read ends of its stdout
    /// and stderr and a pidfd (taken over; -1 if none), kept as the engine's
    /// (``EngineDescriptors``: the code of a namespace context does not close them) until closed.
    /// - Parameter forkServer: The fork server that forked it (and reaps it); `nil` when this
    ///   process is the worker's parent.
    init(pid: pid_t, input: Int32, output: Int32, errors: Int32, pidfd: Int32, forkServer: ForkServer?,
         logger: Logger, onExit: @escaping @Sendable (Worker) -> Void) {
        self.pid = pid
        self.input = input
        self.pidfd = Mutex(pidfd)
        self.forkServer = forkServer
        self.logger = logger
        self.onExit = onExit
        // Writes never wait for the worker (see ``Input``): its descriptor is non-blocking.
        _ = fcntl(input, F_SETFL, fcntl(input, F_GETFL) | O_NONBLOCK)
        EngineDescriptors.keep(input, output, errors, pidfd)
        let thread = Thread { [self] in
            pk_name_this_thread("pykernel-worker")
            readLoop(output: output, errors: errors, pidfd: pidfd)
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Starts `executable arguments...` in a new process group with `descriptors` as its
    /// descriptors 0, 1, 2, ... (in order), SIGPIPE, SIGINT, SIGTERM and SIGHUP at their defaults, nothing
    /// blocked, in this process's environment without Swift's crash backtracer and with one malloc
    /// arena (``WorkerEnvironment``), plus `environment`.
    static func spawn(
        _ executable: String, _ arguments: [String], descriptors: [Int32], environment extra: [String: String] = [:]
    ) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, descriptor) in descriptors.enumerated() {
            posix_spawn_file_actions_adddup2(&actions, descriptor, Int32(target))
        }
        // Nothing else this process has open (a host's pipes and sockets) reaches the worker.
        pk_spawn_actions_close_from(&actions, Int32(descriptors.count))
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGPIPE, SIGINT, SIGTERM, SIGHUP] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var environment = ProcessInfo.processInfo.environment
        WorkerEnvironment.add(to: &environment)
        environment.merge(extra) { _, new in new }
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard status == 0 else { throw WorkerError.spawn("posix_spawn \(executable): \(String(cString: strerror(status)))") }
        ProcessPriority.restore(process: child)
        return child
    }

    /// How the worker ended; `nil` while it runs.
    var exit: WorkerExit? { state.withLock { $0.exit } }

    /// The last lines the worker wrote on its stderr.
    var stderrTail: [String] { state.withLock { $0.stderrTail } }

    /// Sends a request; `pending` is called on the worker's thread. `nil` when the worker has
    /// ended (then `pending.reply` is not called).
    /// - Parameter hold: Keep the request for ``writeHeld()`` (or the next request sent without
    ///   it): the requests of one read of the server's input go to the worker in one write, so
    ///   it wakes once for them.
    @discardableResult
    func send(_ method: String, _ params: JSONObject, _ pending: Pending, hold: Bool = false) -> Int64? {
        let id: Int64? = state.withLock { state in
            guard state.exit == nil, !state.inputClosed else { return nil }
            let id = state.nextID
            state.nextID += 1
            state.pending[id] = pending
            return id
        }
        guard let id else { return nil }
        let line: JSONValue = ["jsonrpc": "2.0", "id": .integer(id), "method": .string(method), "params": .object(params)]
        write(line, hold: hold)
        return id
    }

    /// Writes the requests held by ``send(_:_:_:hold:)``, if any.
    func writeHeld() {
        inputState.withLock { input in
            guard input.open, !input.held.isEmpty else { return }
            let held = input.held
            input.held = []
            write(held, &input)
        }
    }

    /// Sends a request whose answer nobody waits for.
    func sendIgnoringReply(_ method: String, _ params: JSONObject) {
        send(method, params, Pending(notification: { _, _ in }, reply: { _ in }))
    }

    private func write(_ message: JSONValue, hold: Bool) {
        var bytes = message.serialized()
        bytes.append(0x0A)
        inputState.withLock { input in
            guard input.open else { return }
            if hold {
                input.held.append(contentsOf: bytes)
                return
            }
            if !input.held.isEmpty {
                bytes = input.held + bytes
                input.held = []
            }
            write(bytes, &input)
        }
    }

    /// Writes `bytes` to the worker's stdin after what waits in the backlog (with `inputState`'s
    /// lock held, the input open): what the pipe has no room for joins the backlog, written by
    /// the drain source once the worker reads. Never waits.
    private func write(_ bytes: [UInt8], _ input: inout Input) {
        guard input.backlog.isEmpty else {
            input.backlog.append(contentsOf: bytes)
            return
        }
        guard let written = writeWhatFits(bytes[...]), written < bytes.count else { return }
        input.backlog = Array(bytes[written...])
        input.backlogStart = 0
        let source = DispatchSource.makeWriteSource(fileDescriptor: self.input, queue: Self.inputQueue)
        source.setEventHandler { [self] in drainBacklog() }
        source.setCancelHandler { [self] in drainCancelled() }
        input.drain = source
        source.resume()
    }

    /// Writes as much of `bytes` as the pipe takes now: the count written, `nil` when the worker
    /// is gone (its reader answers what waits; nothing more is written then).
    private func writeWhatFits(_ bytes: ArraySlice<UInt8>) -> Int? {
        bytes.withUnsafeBytes { buffer -> Int? in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(input, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { return offset }
                    return nil
                }
                offset += written
            }
            return offset
        }
    }

    /// The drain source's handler: writes what the pipe has room for; once the backlog is
    /// written (or the worker is gone), the source is cancelled.
    private func drainBacklog() {
        inputState.withLock { input in
            guard input.open, let source = input.drain else { return }
            if let written = writeWhatFits(input.backlog[input.backlogStart...]) {
                input.backlogStart += written
                guard input.backlogStart == input.backlog.count else { return }
            }
            input.backlog = []
            input.backlogStart = 0
            input.drain = nil
            input.cancelling += 1
            source.cancel()
        }
    }

    /// A drain source's cancel handler: the descriptor is closed now if ``closeInput()`` left it
    /// to the last source.
    private func drainCancelled() {
        inputState.withLock { input in
            input.cancelling -= 1
            if !input.open && input.cancelling == 0 { closeDescriptor(&input) }
        }
    }

    private func closeDescriptor(_ input: inout Input) {
        guard !input.closed else { return }
        input.closed = true
        EngineDescriptors.forget(self.input)
        _ = Glibc.close(self.input)
    }

    /// Ends the worker at once: SIGKILL to its whole process group.
    func kill() {
        // Never after the reaping: the group id could belong to another process by then.
        if let forkServer {
            // The group id is the worker's pid, reserved while the worker has not been reaped:
            // while its pidfd says it runs, this process kills the group itself (the fork server
            // that forked it may have died, and init adopted the worker: asking a dead fork server
            // did nothing, and the worker's subprocesses outlived its context). Its parent, the
            // fork server, also kills the group while the leader is not reaped (a worker without
            // a pidfd), and again before reaping it.
            pidfd.withLock { pidfd in
                guard pidfd >= 0 else { return }
                if !Self.hasEnded(pidfd: pidfd) { _ = Glibc.kill(-pid, SIGKILL) }
                _ = pk_pidfd_send_signal(pidfd, SIGKILL)
            }
            forkServer.killGroup(of: pid)
        } else if !state.withLock({ $0.reaping }) {
            _ = Glibc.kill(-pid, SIGKILL)
        }
        closeInput()
    }

    /// Whether the process of `pidfd` has ended (its pidfd is readable once it exits).
    private static func hasEnded(pidfd: Int32) -> Bool {
        var descriptor = pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, 0)
            if ready < 0 && errno == EINTR { continue }
            return ready != 0
        }
    }

    /// Closes the worker's stdin (a `pykernel serve` then finishes and exits). What was held or
    /// waits in the backlog is dropped: the worker's end answers its requests.
    func closeInput() {
        state.withLock { $0.inputClosed = true }
        inputState.withLock { input in
            guard input.open else { return }
            input.open = false
            input.held = []
            input.backlog = []
            input.backlogStart = 0
            if let source = input.drain {
                input.drain = nil
                input.cancelling += 1
                source.cancel()
            }
            // A source still cancelling closes it (its cancel handler): never under a live source.
            if input.cancelling == 0 { closeDescriptor(&input) }
        }
    }

    // MARK: The worker's thread

    private func readLoop(output: Int32, errors: Int32, pidfd: Int32) {
        var lines = LineSplitter(maxLineLength: Self.maxLineLength, dropsCarriageReturn: false)
        var errorLines = LineSplitter(maxLineLength: 64 << 10)
        var descriptors = [pollfd(fd: output, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: errors, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var open = [true, true, pidfd >= 0]
        while open[0] || open[1] {
            for index in 0..<3 { descriptors[index].fd = open[index] ? [output, errors, pidfd][index] : -1 }
            let ready = poll(&descriptors, 3, -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if open[2], descriptors[2].revents != 0 {
                // Exited: a grandchild may still hold the pipes open, so end the group now.
                open[2] = false
                if let forkServer {
                    // Its parent kills the group before reaping it. Without a parent that
                    // reports (the fork server ended; init reaps the worker), this process kills
                    // what is left of the group: the id stays reserved while a process of the
                    // group is left (the kernel frees a pid only once no process has it as its
                    // id, group or session), and with none left the signal finds no group
                    // unless the pid was handed out again within this turn, after a cycle through
                    // every pid. Then stop waiting for the pipes to close.
                    forkServer.killGroup(of: pid)
                    if forkServer.hasEnded {
                        _ = Glibc.kill(-pid, SIGKILL)
                        break
                    }
                } else {
                    _ = Glibc.kill(-pid, SIGKILL)
                }
            }
            for (index, fd) in [(0, output), (1, errors)] where open[index] && descriptors[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 {
                    open[index] = false
                    continue
                }
                buffer.withUnsafeBytes { bytes in
                    let chunk = UnsafeRawBufferPointer(rebasing: bytes[0..<count])
                    if index == 0 {
                        // The requests notified about by this read's lines, told once all are handled.
                        var notified: [(id: Int64, caughtUp: @Sendable () -> Void)] = []
                        defer { for request in notified { request.caughtUp() } }
                        _ = lines.feed(chunk) { piece in
                            switch piece {
                            case .line(let line):
                                if let request = handle(line: line), !notified.contains(where: { $0.id == request.id }) {
                                    notified.append(request)
                                }
                            case .tooLong(let length):
                                logger.error("worker \(pid) wrote a line of \(length) bytes, over \(Self.maxLineLength); ending it")
                                _ = Glibc.kill(-pid, SIGKILL)
                            }
                            return true
                        }
                    } else {
                        _ = errorLines.feed(chunk, keepErrorLine)
                    }
                }
            }
        }
        errorLines.finish(keepErrorLine)  // a last line without its newline
        EngineDescriptors.forget(output, errors)
        close(output)
        close(errors)
        let exit: WorkerExit
        if let forkServer {
            forkServer.killGroup(of: pid)
            exit = forkServer.waitForExit(of: pid) ?? .unknown
        } else {
            _ = Glibc.kill(-pid, SIGKILL)
            state.withLock { $0.reaping = true }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            exit = (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
        }
        self.pidfd.withLock { pidfd in
            if pidfd >= 0 {
                EngineDescriptors.forget(pidfd)
                close(pidfd)
            }
            pidfd = -1
        }
        let waiting = state.withLock { state in
            state.exit = exit
            defer { state.pending = [:] }
            return state.pending
        }
        closeInput()
        for id in waiting.keys.sorted() { waiting[id]!.reply(.ended) }
        onExit(self)
    }

    /// Keeps a line of the worker's stderr for crash reports (the last few).
    private func keepErrorLine(_ piece: LineSplitter.Piece) -> Bool {
        guard case .line(let line) = piece else { return true }
        let text = UTF8Text.decode(line)
        state.withLock { state in
            state.stderrTail.append(text)
            if state.stderrTail.count > Self.stderrLinesKept { state.stderrTail.removeFirst() }
        }
        return true
    }

    /// Hands a line to the request it is about; returns the request a notification was for, when
    /// it wants to know that the reader caught up (``Pending/caughtUp``).
    private func handle(line: [UInt8]) -> (id: Int64, caughtUp: @Sendable () -> Void)? {
        // Numbers as written: a rich result's integer past 64 bits keeps every digit.
        guard let message = try? JSONValue.parse(line, numbersAsWritten: true), let object = message.objectValue else {
            logger.warning("worker \(pid) wrote a line that is not a JSON object")
            return nil
        }
        if let method = object["method"]?.stringValue {
            guard var params = object["params"]?.objectValue, let id = params["request_id"]?.intValue else { return nil }
            params["request_id"] = nil
            guard let pending = state.withLock({ $0.pending[Int64(id)] }) else { return nil }
            pending.notification(method, params)
            return pending.caughtUp.map { (Int64(id), $0) }
        }
        guard let id = object["id"]?.intValue else { return nil }
        let pending = state.withLock { $0.pending.removeValue(forKey: Int64(id)) }
        if let error = object["error"] {
            pending?.reply(.error(error))
        } else {
            pending?.reply(.result(object["result"] ?? .null))
        }
        return nil
    }
}

/// A worker could not be started.
public enum WorkerError: Error, CustomStringConvertible {
    case spawn(String)

    public var description: String {
        switch self {
        case .spawn(let message): return "could not start a worker process: \(message)"
        }
    }
}
