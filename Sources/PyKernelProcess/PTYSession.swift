import Foundation
import Glibc
import PyKernelSupport
import _PyKernelProcessShims
import Synchronization

/// A program running on a pseudo-terminal of its own: what ``ProcessService/createPTY(_:)``
/// returns (`pty.*` on the wire).
///
/// The program leads a new session and process group, with the terminal as its controlling
/// terminal on descriptors 0, 1 and 2: it sees a real terminal (`isatty`, job control, line
/// editing, `stty`, `getpass`), and the terminal's line discipline turns `\u{03}` in its input
/// into SIGINT for the foreground process group, as a keyboard would.
///
/// Read what the terminal writes from ``output`` (one consumer): at most 1 MiB waits there;
/// beyond that the terminal is no longer read, so the program blocks on its writes until the
/// consumer catches up — nothing is lost. When the program ends, what the terminal still holds
/// is read (for at most the service's drain window while other processes keep it open), every
/// process left in the terminal's session gets SIGKILL — and so do processes that left it but
/// carry the PTY's `PYKERNEL_PTY_TAG` environment entry (daemons) — the terminal is closed,
/// ``output`` finishes and ``wait()`` returns.
///
/// ```swift
/// let pty = try await service.createPTY(PTYCreateParams(command: "bash", args: ["-i"]))
/// try await pty.sendInput(Array("echo $((6*7)); exit 3\n".utf8))
/// for await bytes in pty.output { print(String(decoding: bytes, as: UTF8.self), terminator: "") }
/// let exit = await pty.wait()   // PTYExit(exitCode: 3, signal: nil)
/// ```
public final class PTYSession: Sendable {
    /// The PTY's id.
    public let id: String
    /// The pid of the program (the terminal's session leader and process group id).
    public let pid: Int32
    /// The program's path.
    public let command: String
    /// Its arguments after `argv[0]`.
    public let args: [String]
    /// The working directory it started in.
    public let cwd: String
    /// What the terminal writes, in order, until it is closed. Iterate it once.
    public let output: PTYOutput

    let child: ChildProcess
    /// A random value set as ``tagVariable`` in the program's environment (and so in that of
    /// every process it starts), so that its end also finds processes that left the session.
    let tag: String
    /// The name of the tag variable.
    static let tagVariable = "PYKERNEL_PTY_TAG"
    private let terminal: TerminalReader
    private let size: Mutex<PTYSize>
    private let inputOrder = TurnQueue()
    private let input: TerminalInput
    private let ended = Latch<PTYExit>()

    /// Bytes that wait in ``output`` before the terminal is no longer read.
    static let outputLimit = 1 << 20
    /// Bytes of input that wait for the program to read them before ``sendInput(_:)`` waits.
    static let inputLimit = 1 << 20

    private init(
        id: String, command: String, args: [String], cwd: String, size: PTYSize, tag: String, child: ChildProcess,
        terminal: TerminalReader
    ) {
        self.id = id
        self.tag = tag
        self.pid = child.pid
        self.command = command
        self.args = args
        self.cwd = cwd
        self.size = Mutex(size)
        self.child = child
        self.terminal = terminal
        self.input = TerminalInput(terminal: terminal, limit: Self.inputLimit)
        self.output = PTYOutput(terminal: terminal)
    }

    /// Opens a terminal of `size` and starts `spec` on it (validated by the service).
    static func start(
        id: String, spec: SpawnSpec, size: PTYSize, drainWindow: Duration, monitor: IOMonitor
    ) throws(ProcessAPIError) -> PTYSession {
        let tag = randomIdentifier()
        var spec = spec
        spec.environment[tagVariable] = tag
        var name = [CChar](repeating: 0, count: 128)
        let master = Posix.raiseAboveStdio(pk_pty_open(&name, name.count, UInt16(size.cols), UInt16(size.rows)))
        guard master >= 0 else {
            throw ProcessAPIError(.spawnFailed, "Could not open a pseudo-terminal: \(Posix.describe(errno)).")
        }
        let slavePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        // Held until the child has its own descriptors, so the master never reads EIO before.
        let slave = Posix.open(slavePath, O_RDWR | O_NOCTTY)
        guard slave >= 0 else {
            let reason = Posix.describe(errno)
            Posix.closeQuietly(master)
            throw ProcessAPIError(.spawnFailed, "Could not open \(slavePath): \(reason).")
        }
        defer { Posix.closeQuietly(slave) }
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(spec, terminal: slavePath, monitor: monitor)
        } catch {
            Posix.closeQuietly(master)
            throw error
        }
        let session = PTYSession(
            id: id, command: spec.executable, args: Array(spec.arguments.dropFirst()), cwd: spec.workingDirectory,
            size: size, tag: tag, child: child,
            terminal: TerminalReader(master: master, monitor: monitor, limit: outputLimit))
        Task { await session.supervise(drainWindow: drainWindow.inSeconds) }
        return session
    }

    /// Waits for the program's end, then drains and closes the terminal (see the type's comment).
    private func supervise(drainWindow: Double) async {
        guard let code = await child.exited.waitUncancellable() else { return }
        input.close()
        _ = await terminal.endOfFile.waitUncancellable(timeout: drainWindow)
        // The zombie leader keeps the session id reserved until it is released below.
        await ProcessKiller.terminate(grace: 0, select: remainingProcesses())
        await terminal.close()
        let exit = PTYExit(exitCode: code, signal: child.terminatingSignal)
        child.release()
        ended.fire(exit)
    }

    /// The PTY as `pty.get` shows it.
    public var info: PTYInfo {
        PTYInfo(id: id, pid: pid, command: command, args: args, cwd: cwd, size: size.withLock { $0 }, exit: ended.value)
    }

    /// Whether the terminal is no longer read because ``outputLimit`` bytes wait in ``output``.
    var terminalIsPaused: Bool { terminal.isPaused }

    /// Whether a ``sendInput(_:)`` waits because ``inputLimit`` bytes wait for the program.
    var inputIsFull: Bool { input.isFull }

    /// Whether the program has ended and the terminal is closed.
    public var hasExited: Bool { ended.isSet }

    /// Types `bytes` on the terminal, as on a keyboard (`\u{03}` is Ctrl-C, `\r` or `\n`
    /// Enter): returns once they are queued behind the input sent before; they are written, in
    /// the order of the calls, as the program reads. At most 1 MiB waits, whatever the size of
    /// one input: what does not fit is queued as the program reads, and the call returns once
    /// the last byte is queued. Input still waiting when the program ends is dropped.
    ///
    /// - Throws: ``ProcessAPIError/Code/ptyExited`` once the program has ended.
    public func sendInput(_ bytes: [UInt8]) async throws(ProcessAPIError) {
        try await send(queueInput(bytes))
    }

    /// Input whose place in the PTY's input order is taken (``queueInput(_:)``); it must be
    /// given to ``send(_:)``, or the inputs after it never go out.
    package struct QueuedInput: Sendable {
        let turn: UInt64
        let bytes: [UInt8]
    }

    /// Takes the next place in the input order now (the server does it while it reads requests,
    /// so that inputs are written in the order they arrived, whatever order their tasks run in).
    package func queueInput(_ bytes: [UInt8]) -> QueuedInput {
        QueuedInput(turn: inputOrder.take(), bytes: bytes)
    }

    /// Queues the input once every input queued before it is (see ``sendInput(_:)``).
    package func send(_ queued: QueuedInput) async throws(ProcessAPIError) {
        await inputOrder.wait(for: queued.turn)
        defer { inputOrder.done(queued.turn) }
        guard !child.exited.isSet, await input.enqueue(queued.bytes) else { throw exitedError() }
    }

    /// Sets the terminal's size: the foreground process group gets SIGWINCH and reads the new
    /// size (`stty size`, `TIOCGWINSZ`).
    ///
    /// - Throws: ``ProcessAPIError/Code/invalidArgument`` (field `cols` or `rows`) for a side
    ///   outside 1–10,000; ``ProcessAPIError/Code/ptyExited`` once the program has ended.
    public func resize(_ newSize: PTYSize) throws(ProcessAPIError) {
        try newSize.validate()
        guard !child.exited.isSet, terminal.setSize(cols: newSize.cols, rows: newSize.rows) else { throw exitedError() }
        size.withLock { $0 = newSize }
    }

    /// Sends `signal` (SIGKILL by default) to the program's whole process group. Does nothing
    /// once the program has ended. When the program ends, what is left of its session is
    /// killed too (job-control shells give each job a process group of its own).
    ///
    /// - Throws: ``ProcessAPIError/Code/invalidArgument`` (field `signal`) for a number that
    ///   is no signal (1–64).
    public func kill(signal: Int32 = SIGKILL) throws(ProcessAPIError) {
        guard (1...64).contains(signal) else {
            throw ProcessAPIError(.invalidArgument, "signal must be a signal number between 1 and 64, got \(signal).", field: "signal")
        }
        child.signalGroup(signal)
    }

    /// Waits until the program has ended and the terminal is closed (``output`` then holds
    /// the last bytes), and returns how it ended.
    public func wait() async -> PTYExit {
        await ended.waitUncancellable()!
    }

    /// Ends the terminal's whole session now, as a hang-up does: SIGHUP, the grace period,
    /// SIGKILL; returns once the program has ended and the terminal is closed.
    func terminate(grace: Duration) async {
        if !child.exited.isSet {
            await ProcessKiller.terminate(signal: SIGHUP, grace: grace.inSeconds, select: remainingProcesses())
        }
        _ = await ended.waitUncancellable(timeout: 5)
    }

    /// The processes of the PTY: the members of its session, and those that left it (`setsid`,
    /// daemons) but still carry its ``tagVariable`` entry.
    private func remainingProcesses() -> @Sendable (ProcessTable) -> Set<pid_t> {
        let leader = pid
        let tagEntry = Array("\(Self.tagVariable)=\(tag)".utf8)
        return { table in
            var found = table.members(ofSession: leader)
            for entry in table.entries.values where entry.isAlive && !found.contains(entry.pid) {
                if table.environment(of: entry.pid, contains: tagEntry) { found.insert(entry.pid) }
            }
            return found
        }
    }

    private func exitedError() -> ProcessAPIError {
        ProcessAPIError(.ptyExited, "the program of PTY '\(id)' has exited (pty.get shows how); it takes no more input or resizing")
    }
}

/// What a PTY's terminal writes, chunk by chunk, in order; it finishes once the terminal is
/// closed (after the program ended). One consumer: iterate it once (an iteration that waits
/// while another one does ends at once).
public struct PTYOutput: AsyncSequence, Sendable {
    /// A chunk of bytes as the terminal wrote them (not necessarily whole lines or characters).
    public typealias Element = [UInt8]

    let terminal: TerminalReader

    /// Takes the chunks in order.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let terminal: TerminalReader

        /// The next chunk, or `nil` once the terminal is closed and everything was read.
        public mutating func next() async -> [UInt8]? { await terminal.next() }
    }

    /// Starts taking chunks.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(terminal: terminal) }
}

/// Turns handed out in call order; each holder runs once the turns before it are done.
final class TurnQueue: Sendable {
    private struct State {
        var next: UInt64 = 0
        var serving: UInt64 = 0
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    /// The next turn.
    func take() -> UInt64 {
        state.withLock { s in
            defer { s.next += 1 }
            return s.next
        }
    }

    /// Waits until the turns before `turn` are done.
    func wait(for turn: UInt64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { s -> Bool in
                if s.serving == turn { return true }
                s.waiting[turn] = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Ends `turn` (the current one): the next one may run.
    func done(_ turn: UInt64) {
        let next = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.serving = turn + 1
            return s.waiting.removeValue(forKey: turn + 1)
        }
        next?.resume()
    }
}
