import Foundation
import Logging
import PyKernelSupport
import Synchronization
import _PyKernelProcessShims

/// The server's side of a fork server process (`pykernel fork-server`, see ``ForkServerLoop``):
/// it asks for forks, receives each child's descriptors as a ``Worker`` and learns how children
/// ended (only their parent, the fork server, can wait for them).
///
/// A thread of its own (`pykernel-forks`) reads the control socket and the fork server's stderr
/// (relayed to the log). When the control socket ends, the fork server is reaped and `onEnd` is
/// called; the workers it forked live on (their exit status is then unknown).
///
/// Requests are sent without holding `lock`: a send waits while the socket is full, that is
/// until the fork server reads, and the fork server may first be sending exit reports that only
/// this thread, taking `lock` to record them, makes room for.
final class ForkServer: @unchecked Sendable {  // mutable state guarded by `lock`, a ConditionLock (waits for exit reports)
    /// What the fork server reports.
    enum Event: Sendable {
        /// A new child, as a worker.
        case child(Worker)
        /// A fork was refused (e.g. the fork server was not single-threaded).
        case refused(String)
        /// A child was forked but its descriptors did not arrive (this process is out of file
        /// descriptors): it is killed, and the reason says why.
        case lost(String)
        /// The fork server ended: how, and whether it had become ready.
        case ended(WorkerExit, wasReady: Bool)
    }

    let pid: pid_t
    private let control: Int32
    private let lock = ConditionLock()
    private var exits: [pid_t: WorkerExit] = [:]
    /// Children killed because their descriptors did not arrive: nobody waits for their exit.
    private var lost = Set<pid_t>()
    private var ended = false
    private var ready = false
    /// When the fork server last sent a message (or started).
    private var heard = ContinuousClock.now
    private var controlOpen = true
    /// Sends in progress: the control socket is closed only once none is.
    private var sending = 0
    private let logger: Logger

    /// Starts `executable fork-server arguments...` with the control socket as its descriptor 3.
    /// - Parameters:
    ///   - workerLogger: The logger of the workers it forks.
    ///   - onExit: Called when a forked worker ended (on its thread).
    ///   - onEvent: Called on the fork server's thread for each ``Event``.
    init(executable: String, arguments: [String], logger: Logger,
         onExit: @escaping @Sendable (Worker) -> Void, onEvent: @escaping @Sendable (ForkServer, Event) -> Void) throws {
        var sockets: [Int32] = [-1, -1]
        var errors: [Int32] = [-1, -1]
        guard pk_seqpacket_pair(&sockets) == 0, pk_pipe_cloexec(&errors) == 0 else {
            let reason = String(cString: strerror(errno))
            for fd in sockets + errors where fd >= 0 { close(fd) }
            throw WorkerError.spawn("socketpair: \(reason)")
        }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        let child: pid_t
        do {
            child = try Worker.spawn(executable, [ForkServerLoop.commandName] + arguments,
                                     descriptors: [devNull, devNull, errors[1], sockets[1]],
                                     environment: ForkServerLoop.bindNowEnvironment())
        } catch {
            for fd in sockets + errors { close(fd) }
            throw error
        }
        close(sockets[1])
        close(errors[1])
        // The engine's (``EngineDescriptors``) until closed: the code of a namespace context
        // does not close them.
        EngineDescriptors.keep(sockets[0], errors[0])
        self.pid = child
        self.control = sockets[0]
        self.logger = logger
        let errorOutput = errors[0]
        let thread = Thread { [self] in
            pk_name_this_thread("pykernel-forks")
            readLoop(errors: errorOutput, onExit: onExit, onEvent: onEvent)
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Whether the fork server has ended (its children's statuses are then unknown).
    var hasEnded: Bool { lock.withLock { ended } }

    /// Whether the fork server has prepared its engine and serves forks.
    var isReady: Bool { lock.withLock { ready && !ended } }

    /// When the fork server last sent a message (it was ready, a child, an exit report), or started.
    var lastHeard: ContinuousClock.Instant { lock.withLock { heard } }

    /// Kills the fork server (SIGKILL): one that stopped serving (stopped by SIGSTOP, hung). Its
    /// end follows as for any end; the workers it forked live on.
    func kill() {
        // Never after the reaping (this thread's, once the socket ended): the pid could be reused.
        lock.withLock { if !ended { _ = Glibc.kill(pid, SIGKILL) } }
    }

    /// Asks for one more child; `false` when the fork server has ended.
    func requestFork() -> Bool { send("fork") }

    /// Asks the fork server to SIGKILL the process group of its child `pid` (if not reaped yet).
    /// Never waits: a fork server that does not read (stopped by SIGSTOP) would block the caller
    /// (the request reader, deleting contexts) once its socket is full; the message is dropped
    /// then, as `Worker.kill()` has killed the group itself while the worker's pidfd says it runs.
    func killGroup(of pid: pid_t) { _ = send("kill \(pid)", waits: false) }

    /// Waits until the fork server reports how its child `pid` ended; `nil` when it ended first.
    func waitForExit(of pid: pid_t) -> WorkerExit? {
        lock.withLock {
            while exits[pid] == nil && !ended { lock.wait() }
            return exits.removeValue(forKey: pid)
        }
    }

    /// Closes the control socket: the fork server kills its children's groups, reaps them and exits.
    func stop() {
        lock.withLock {
            if controlOpen { shutdown(control, Int32(SHUT_RDWR)) }
        }
    }

    private func send(_ text: String, waits: Bool = true) -> Bool {
        let open = lock.withLock {
            guard controlOpen, !ended else { return false }
            sending += 1
            return true
        }
        guard open else { return false }
        let bytes = Array(text.utf8)
        let sent = pk_send_message(control, bytes, bytes.count, nil, 0, waits ? 1 : 0) == 0
        lock.withLock {
            sending -= 1
            if sending == 0 { lock.broadcast() }
        }
        return sent
    }

    // MARK: The fork server's thread

    private func readLoop(errors: Int32, onExit: @escaping @Sendable (Worker) -> Void, onEvent: @Sendable (ForkServer, Event) -> Void) {
        var polls = [pollfd(fd: control, events: Int16(POLLIN), revents: 0), pollfd(fd: errors, events: Int16(POLLIN), revents: 0)]
        var errorLines = LineSplitter(maxLineLength: 64 << 10)
        var buffer = [UInt8](repeating: 0, count: 256)
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while polls[0].fd >= 0 {
            if poll(&polls, 2, -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            if polls[1].revents != 0 {
                let count = chunk.withUnsafeMutableBytes { read(errors, $0.baseAddress, $0.count) }
                if count > 0 {
                    chunk.withUnsafeBytes { _ = errorLines.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count]), relay) }
                } else if count == 0 || errno != EINTR {
                    polls[1].fd = -1
                }
            }
            guard polls[0].revents != 0 else { continue }
            var descriptors = [Int32](repeating: -1, count: 4)
            var count: Int32 = 0
            let length = pk_receive_message(control, &buffer, buffer.count, &descriptors, 4, &count)
            if length < 0 && errno == EINTR { continue }
            guard length > 0 else { break }
            let words = String(decoding: buffer[0..<length], as: UTF8.self).split(separator: " ").map(String.init)
            lock.withLock { heard = .now }
            switch (words.first, words.count) {
            case ("ready", _):
                lock.withLock { ready = true }
                logger.debug("fork server \(pid) ready")
            case ("child", 2) where count >= 3 && pid_t(words[1]) != nil:
                let child = pid_t(words[1])!
                let worker = Worker(pid: child, input: descriptors[0], output: descriptors[1], errors: descriptors[2],
                                    pidfd: count >= 4 ? descriptors[3] : -1, forkServer: self, logger: logger, onExit: onExit)
                onEvent(self, .child(worker))
            case ("child", 2) where pid_t(words[1]) != nil:
                // Fewer than its three pipes came: the descriptors were truncated (MSG_CTRUNC)
                // because this process has no room for them (EMFILE).
                let child = pid_t(words[1])!
                for index in 0..<Int(count) { close(descriptors[index]) }
                lock.withLock { _ = lost.insert(child) }
                killGroup(of: child)
                onEvent(self, .lost(Self.outOfDescriptors()))
            case ("exit", 4) where pid_t(words[1]) != nil && Int32(words[3]) != nil:
                let (child, number) = (pid_t(words[1])!, Int32(words[3])!)
                lock.withLock {
                    if lost.remove(child) == nil {
                        exits[child] = words[2] == "signaled" ? .signaled(number) : .exited(number)
                    }
                    lock.broadcast()
                }
            case ("refused", _):
                onEvent(self, .refused(words.dropFirst().joined(separator: " ")))
            default:
                for index in 0..<Int(count) { close(descriptors[index]) }
                logger.error("fork server \(pid) sent an unknown message: \(words.joined(separator: " "))")
            }
        }
        if polls[1].fd >= 0 {
            // Its last words (a crash report) before the exit is reported.
            while case let count = chunk.withUnsafeMutableBytes({ read(errors, $0.baseAddress, $0.count) }), count > 0 {
                chunk.withUnsafeBytes { _ = errorLines.feed(UnsafeRawBufferPointer(rebasing: $0[0..<count]), relay) }
            }
        }
        errorLines.finish(relay)
        EngineDescriptors.forget(errors)
        close(errors)
        // A send still waiting for room fails now, and a fork server still running (this
        // thread stopped reading) sees its control socket end and exits.
        shutdown(control, Int32(SHUT_RDWR))
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exit: WorkerExit = (status & 0x7F) == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
        let wasReady = lock.withLock {
            ended = true
            controlOpen = false
            lock.broadcast()
            while sending > 0 { lock.wait() }  // the descriptor's number is not reused under a send
            EngineDescriptors.forget(control)
            close(control)
            return ready
        }
        onEvent(self, .ended(exit, wasReady: wasReady))
    }

    /// Why a child's descriptors did not arrive: this process is out of file descriptors.
    private static func outOfDescriptors() -> String {
        var limit = rlimit()
        let count = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 ? " (RLIMIT_NOFILE \(limit.rlim_cur))" : ""
        return "the server is out of file descriptors\(count): the forked worker's pipes could not be received, and it was killed"
    }

    /// Logs a line of the fork server's stderr at its level (`pykernel[LEVEL]: message`), else as an error.
    private func relay(_ piece: LineSplitter.Piece) -> Bool {
        guard case .line(let bytes) = piece else { return true }
        let line = UTF8Text.decode(bytes)
        if line.hasPrefix("pykernel["), let close = line.firstIndex(of: "]"),
           let level = Logger.Level(rawValue: String(line[line.index(line.startIndex, offsetBy: 9)..<close])) {
            logger.log(level: level, "\(line[line.index(after: close)...].drop(while: { $0 == ":" || $0 == " " }))")
        } else if !line.isEmpty {
            logger.error("fork server \(pid): \(line)")
        }
        return true
    }
}
