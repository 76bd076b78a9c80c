import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// Deleting a session: ending every process it started and removing its logs.
extension Session {

    /// Ends the shell(s) and every process the session started — `SIGTERM`, the grace period,
    /// then `SIGKILL` — and removes the session's directory. Commands still running end with
    /// exit code 137; asynchronous ones are announced on the exit events, a synchronous one
    /// answers with the output it printed (the directory is removed after its answer read it).
    ///
    /// When some of its processes cannot be ended — they survive `SIGKILL`, or this process is
    /// out of descriptors and cannot see or signal them (it then signals the process groups it
    /// can reach without one: its shells', and its asynchronous commands' while their reporters
    /// run) — nothing is released: the commands still run as far as the session knows, the
    /// keeper (``GroupKeeper``) still lists their groups, and calling this again tries again.
    /// - Parameter byShutdown: The service is shutting down (not a `session.delete`): a follow of
    ///   its logs then ends with `shutting_down`.
    /// - Returns: how the processes ended: ``ProcessKiller/Outcome/ended`` once the session is gone.
    @discardableResult
    func terminate(byShutdown: Bool = false) async -> ProcessKiller.Outcome {
        let (shells, commands, entrypoint) = state.withLock { s in
            s.deleted = true
            s.endedByShutdown = byShutdown
            s.shell = nil
            return (s.allShells, s.commands, s.entrypoint)
        }
        // No shell ever started (its start failed): no process carries the session's tag.
        if shells.isEmpty && entrypoint == nil {
            let dir = directory
            await Blocking.run { Posix.removeTree(dir) }
            return .ended
        }
        var roots = Set(shells.map(\.pid))
        var groups = roots
        // The processes of running asynchronous commands, as read when they started (a number
        // reused by another process since is not theirs).
        var identities = Set<ProcessTable.Identity>()
        let running = commands.filter { $0.isAsync && !$0.exited.isSet }
        for cmd in running {
            if let identity = cmd.identity { identities.insert(identity) }
            if let reporter = cmd.reporter { identities.insert(reporter) }
            if let group = cmd.group { groups.insert(group) }
        }
        if let entrypoint {
            roots.insert(entrypoint.pid)
            groups.insert(entrypoint.pid)
        }
        let known = LockedSet<pid_t>()
        let fixedRoots = roots
        let fixedGroups = groups
        let fixedIdentities = identities
        let tagEntry = Array("\(Self.tagVariable)=\(tag)".utf8)
        let children = shells.map(\.child) + (entrypoint.map { [$0] } ?? [])
        let monitor = self.monitor
        // The tree is read before anything is signalled, while the parentage is intact.
        let outcome = await ProcessKiller.terminate(
            grace: configuration.killGracePeriod.inSeconds,
            fallback: { signal in
                // Out of descriptors: the groups whose numbers are known to be the session's.
                for child in children { child.signalGroup(signal) }
                monitor.schedule {
                    for cmd in running { cmd.signalGroupWhileReporting(signal) }
                }
            },
            snapshot: configuration.processTable
        ) { table in
            known.update { k in
                k.formUnion(fixedRoots)
                for identity in fixedIdentities where table.entries[identity.pid]?.identity == identity { k.insert(identity.pid) }
                k.formUnion(table.members(ofGroups: fixedGroups))
                k.formUnion(table.descendants(of: k))
                // Daemons that left both the tree and the group still carry the session's tag.
                for entry in table.entries.values where entry.isAlive && !k.contains(entry.pid) {
                    if table.environment(of: entry.pid, contains: tagEntry) { k.insert(entry.pid) }
                }
                return k
            }
        }
        guard outcome.ended else {
            logger.warning(
                "processes of the session are still running after its deletion was asked",
                metadata: ["session": "\(id)", "outcome": "\(outcome)"])
            state.withLock { $0.undeleted = outcome }
            return outcome
        }
        state.withLock { $0.undeleted = nil }
        for shell in shells { shell.closeControl() }
        for child in children {
            _ = await child.exited.waitUncancellable(timeout: 2)
            child.release()
        }
        for shell in shells { shell.reader.stop() }
        for cmd in commands {
            complete(cmd, 128 + SIGKILL)
            cmd.pump?.stop()
        }
        // A synchronous command this ended answers with what it printed: its logs are removed
        // once its answer has read them (it does at once, now that the command has ended).
        for cmd in commands where !cmd.isAsync && !isEntrypoint {
            _ = await cmd.answered.waitUncancellable(timeout: 10)
        }
        let dir = directory
        await Blocking.run { Posix.removeTree(dir) }
        return outcome
    }

    /// The error of a `session.delete` whose processes could not all be ended (`outcome`).
    func terminationError(_ outcome: ProcessKiller.Outcome) -> ProcessAPIError {
        let why = switch outcome {
        case .survived(let count): "\(count) of its processes survived SIGKILL"
        default: "the server is out of file descriptors (too many open files) and could not make sure that all its processes ended"
        }
        return ProcessAPIError(
            .processesRunning,
            "session '\(id)' was not deleted: \(why); it stays listed and takes no more commands — session.delete tries again")
    }
}
