import Glibc
import _PyKernelProcessShims

/// Terminates a changing set of processes found in /proc — `SIGTERM` (or another first signal),
/// a grace period, then `SIGKILL` — re-reading /proc every 20 ms so that processes forked
/// meanwhile are caught too.
///
/// Each pass signals a parent before its children. A shell waiting for its child runs its next
/// command as soon as that child dies: signalled after its child (one `pidfd_send_signal` at a
/// time, the killer thread preempted in between on a loaded machine), the subshell of
/// `sleep 100; echo never` printed `never` and exited 0 before its own SIGTERM arrived. A
/// parent signalled first is already dying (a signal whose action is to terminate ends the
/// process as it is sent, unless blocked, and then it ends as it unblocks it) when its child does.
///
/// A pid read from /proc is never signalled by number: the killer opens a pidfd for it, then
/// checks that the process behind the pidfd is still the one it read (same start time) before
/// signalling through the pidfd, so a pid reused meanwhile is never hit. (Kept custom: these are
/// processes the service did not start — grandchildren, daemons that left the process group —
/// which swift-subprocess knows nothing about.)
enum ProcessKiller {
    /// - Parameters:
    ///   - signal: the first signal (`SIGTERM`; `SIGHUP` for a terminal that hangs up).
    ///   - grace: seconds between it and `SIGKILL` (0: `SIGKILL` at once).
    ///   - hardLimit: seconds after the grace period before giving up on unkillable processes.
    ///   - select: given a fresh snapshot, the pids that must end (may grow between calls).
    /// - Returns: whether every selected process ended.
    @discardableResult
    static func terminate(
        signal first: Int32 = SIGTERM, grace: Double, hardLimit: Double = 3, select: @escaping @Sendable (ProcessTable) -> Set<pid_t>
    ) async -> Bool {
        let me = getpid()
        let start = monotonicNow()
        var termed = Set<ProcessTable.Identity>()
        var killing = false
        while true {
            let targets = await Blocking.run { () -> [ProcessTable.Entry] in
                let table = ProcessTable.snapshot()
                return table.parentsFirst(select(table)).filter { $0.isAlive && $0.pid != me && $0.pid > 1 }
            }
            if targets.isEmpty { return true }
            let elapsed = monotonicNow() - start
            if !killing && elapsed >= grace { killing = true }
            for entry in targets where killing || !termed.contains(entry.identity) {
                signal(entry.identity, killing ? SIGKILL : first)
                termed.insert(entry.identity)
            }
            if elapsed >= grace + hardLimit { return false }
            await pause(0.02)
        }
    }

    /// Signals the process `identity` names through a pidfd, if it still exists.
    static func signal(_ identity: ProcessTable.Identity, _ signal: Int32) {
        let pidfd = pk_pidfd_open(identity.pid)
        guard pidfd >= 0 else { return }  // gone already
        defer { close(pidfd) }
        guard let now = ProcessTable.readEntry(identity.pid), now.identity == identity else { return }
        _ = pk_pidfd_send_signal(pidfd, signal)
    }
}
