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
///
/// Out of descriptors (EMFILE), a pass that cannot list /proc, read a process or open its pidfd
/// is run again with the ``DescriptorReserve``'s; what it still could not see or signal keeps the
/// killer going — an empty table read then is not "everything ended" — and `fallback` signals
/// what the caller can reach without a descriptor (its own children's process groups).
enum ProcessKiller {
    /// How a ``terminate(signal:grace:hardLimit:fallback:snapshot:select:)`` ended.
    enum Outcome: Sendable, Equatable {
        /// Every selected process ended (a complete pass found none left).
        case ended
        /// This many selected processes were still alive after `SIGKILL` and the hard limit.
        case survived(Int)
        /// The last passes could not see or signal every process: this process was out of
        /// descriptors (EMFILE, ENFILE) even with its reserve.
        case unconfirmed

        /// Whether every selected process ended.
        var ended: Bool { self == .ended }
    }

    /// What sending a signal through a pidfd did.
    enum Delivery: Sendable {
        case sent
        /// The process had ended (or its pid belongs to another process now).
        case gone
        /// Not sent, and nothing known: this process is out of descriptors.
        case unreachable
    }

    /// - Parameters:
    ///   - signal: the first signal (`SIGTERM`; `SIGHUP` for a terminal that hangs up).
    ///   - grace: seconds between it and `SIGKILL` (0: `SIGKILL` at once).
    ///   - hardLimit: seconds after the grace period before giving up on unkillable processes.
    ///   - fallback: called with the signal of the moment on each pass that could not see or
    ///     signal every process: signal what can be reached without opening a descriptor.
    ///   - snapshot: reads the process table (/proc; replaced by tests).
    ///   - select: given a fresh snapshot, the pids that must end (may grow between calls).
    /// - Returns: whether every selected process ended, or why not.
    @discardableResult
    static func terminate(
        signal first: Int32 = SIGTERM, grace: Double, hardLimit: Double = 3,
        fallback: (@Sendable (Int32) -> Void)? = nil,
        snapshot: @escaping @Sendable () -> ProcessTable = ProcessTable.snapshot,
        select: @escaping @Sendable (ProcessTable) -> Set<pid_t>
    ) async -> Outcome {
        let me = getpid()
        let start = monotonicNow()
        var termed = Set<ProcessTable.Identity>()
        var killing = false
        while true {
            let elapsed = monotonicNow() - start
            if !killing && elapsed >= grace { killing = true }
            let signal = killing ? SIGKILL : first
            let all = killing
            let before = termed
            let pass = await Blocking.run { () -> Pass in
                let pass = Self.pass(signal, all: all, termed: before, me: me, snapshot: snapshot, select: select)
                guard !pass.isComplete else { return pass }
                return DescriptorReserve.released {
                    Self.pass(signal, all: all, termed: pass.termed, me: me, snapshot: snapshot, select: select)
                }
            }
            termed = pass.termed
            if pass.isComplete && pass.found == 0 { return .ended }
            if !pass.isComplete { fallback?(signal) }
            if elapsed >= grace + hardLimit { return pass.isComplete ? .survived(pass.found) : .unconfirmed }
            await pause(0.02)
        }
    }

    /// One look at the table and the signals it calls for.
    private struct Pass: Sendable {
        /// The selected processes found alive (and signalled).
        var found: Int
        /// Whether the table was complete and every one of them could be signalled.
        var isComplete: Bool
        /// The processes sent the first signal so far.
        var termed: Set<ProcessTable.Identity>
    }

    /// Reads the table, selects, and signals each process found — with the first signal unless
    /// it had it already, or `SIGKILL` (`all`) — each parent before its children.
    private static func pass(
        _ signal: Int32, all: Bool, termed: Set<ProcessTable.Identity>, me: pid_t,
        snapshot: () -> ProcessTable, select: (ProcessTable) -> Set<pid_t>
    ) -> Pass {
        let table = snapshot()
        let targets = table.parentsFirst(select(table)).filter { $0.isAlive && $0.pid != me && $0.pid > 1 }
        var pass = Pass(found: targets.count, isComplete: table.isComplete, termed: termed)
        for entry in targets where all || !termed.contains(entry.identity) {
            switch Self.signal(entry.identity, signal) {
            case .sent, .gone: pass.termed.insert(entry.identity)
            case .unreachable: pass.isComplete = false
            }
        }
        return pass
    }

    /// Signals the process `identity` names through a pidfd, if it still exists.
    @discardableResult
    static func signal(_ identity: ProcessTable.Identity, _ signal: Int32) -> Delivery {
        let pidfd = pk_pidfd_open(identity.pid)
        guard pidfd >= 0 else { return errno == ESRCH ? .gone : .unreachable }
        defer { close(pidfd) }
        switch ProcessTable.read(identity.pid) {
        case .found(let now) where now.identity == identity:
            return pk_pidfd_send_signal(pidfd, signal) == 0 || errno != ESRCH ? .sent : .gone
        case .found, .gone:
            return .gone
        case .unreadable:
            return .unreachable
        }
    }
}
