import Glibc

/// The processes a run started, found through `/proc`: what a terminal's Ctrl-C reaches when a
/// program waits for them.
///
/// A stop is raised in the interpreter thread, but a call such as `os.system("sleep 600")` (libc's
/// `system`, which waits again when a signal interrupts it) returns only when its child does: the
/// run would hold the interpreter, and every context's runs after it, until then. A terminal's
/// Ctrl-C reaches the whole foreground process group, the child included; here the processes the
/// interpreter thread started since the run began (and their descendants) that are still in this
/// process's group get the signal instead. Processes started by earlier runs (a server left in
/// the background; `/proc` tells start times to 10 ms, so one started within 10 ms before the run
/// may count as the run's), by the engine itself, or that left the group (`start_new_session=True`)
/// are not touched. A run that a stop ended ends with those still running (``end(_:within:)``).
enum RunProcesses {
    /// A process, told from a later one with its pid by its start time.
    struct Process: Equatable, Sendable {
        let pid: pid_t
        let startTicks: UInt64
    }

    /// Sends `signal` to `processes` (from ``started(by:during:)``); returns how many were sent one.
    @discardableResult
    static func signal(_ signal: Int32, to processes: [pid_t]) -> Int {
        processes.filter { kill($0, signal) == 0 }.count
    }

    /// The processes the thread `thread` started during the last `runAge`, and their
    /// descendants, in this process's group. Keep them only if that run was the thread's
    /// throughout: a process the next run starts would count too.
    static func started(by thread: pid_t, during runAge: Duration) -> [pid_t] {
        startedProcesses(by: thread, during: runAge).map(\.pid)
    }

    /// ``started(by:during:)`` with each process's start time.
    static func startedProcesses(by thread: pid_t, during runAge: Duration) -> [Process] {
        guard thread > 0, let earliest = ticksSinceBoot(before: runAge) else { return [] }
        let group = getpgrp()
        var found: [Process] = []
        var pending = children(listedIn: "/proc/self/task/\(thread)/children").filter { pid in
            status(of: pid).map { $0.startTicks >= earliest } ?? false
        }
        while let pid = pending.popLast() {
            guard !found.contains(where: { $0.pid == pid }), let status = status(of: pid) else { continue }
            if status.group == group { found.append(Process(pid: pid, startTicks: status.startTicks)) }
            for task in tasks(of: pid) { pending += children(listedIn: "/proc/\(pid)/task/\(task)/children") }
        }
        return found
    }

    /// Ends `processes` (SIGKILL) that still run in this process's group (the same processes:
    /// same start times), and waits until they have ended (at most `limit`: a process ends
    /// within microseconds of SIGKILL, unless the kernel holds it in an uninterruptible wait), so
    /// that nothing more of theirs reaches a pipe read after this returns. Returns how many
    /// were killed.
    static func end(_ processes: [Process], within limit: Duration = .milliseconds(200)) -> Int {
        let group = getpgrp()
        let killed = processes.filter { process in
            guard let status = status(of: process.pid), status.startTicks == process.startTicks, status.group == group,
                  !status.ended else { return false }
            return kill(process.pid, SIGKILL) == 0
        }
        let deadline = ContinuousClock.now + limit
        for process in killed {
            while let status = status(of: process.pid), status.startTicks == process.startTicks, !status.ended,
                  ContinuousClock.now < deadline {
                sched_yield()
            }
        }
        return killed.count
    }

    /// The calling thread's kernel thread id (`/proc/thread-self` is `PID/task/TID`; Swift's
    /// Glibc module does not export `gettid`), 0 when unknown.
    static func currentThreadID() -> pid_t {
        var link = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/thread-self", &link, link.count - 1)
        guard count > 0 else { return 0 }
        let text = String(decoding: link[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(separator: "/").last.flatMap { pid_t($0) } ?? 0
    }

    /// The boot-relative clock tick (`/proc/PID/stat`'s `starttime` unit, 10 ms) that holds the
    /// instant `age` ago (1 ms earlier, for the two clocks' rounding): every process started since
    /// then has a `starttime` at least this; one started up to a tick before may have it too.
    private static func ticksSinceBoot(before age: Duration) -> UInt64? {
        var now = timespec()
        guard clock_gettime(CLOCK_BOOTTIME, &now) == 0 else { return nil }
        let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        let seconds = Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
            - Double(age.components.seconds) - Double(age.components.attoseconds) / 1e18
        return UInt64(max(0, ((seconds - 0.001) * ticksPerSecond).rounded(.down)))
    }

    /// `pgrp` and `starttime` of `/proc/PID/stat` (fields 5 and 22; counted after the command's
    /// closing parenthesis, which may itself contain spaces and parentheses), and whether its
    /// state (field 3) says it has ended (a zombie, or dead).
    private static func status(of pid: pid_t) -> (group: pid_t, startTicks: UInt64, ended: Bool)? {
        guard let text = contents(of: "/proc/\(pid)/stat"), let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let group = pid_t(fields[2]), let start = UInt64(fields[19]) else { return nil }
        return (group, start, fields[0] == "Z" || fields[0] == "X")
    }

    private static func tasks(of pid: pid_t) -> [pid_t] {
        guard let directory = opendir("/proc/\(pid)/task") else { return [] }
        defer { closedir(directory) }
        var tasks: [pid_t] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let task = pid_t(name) { tasks.append(task) }
        }
        return tasks
    }

    private static func children(listedIn path: String) -> [pid_t] {
        (contents(of: path) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { pid_t($0) }
    }

    /// A small `/proc` file's text (their size reads as 0: read to the end).
    static func contents(of path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
