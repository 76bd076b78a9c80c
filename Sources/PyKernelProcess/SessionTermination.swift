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
    /// - Parameter byShutdown: The service is shutting down (not a `session.delete`): a follow of
    ///   its logs then ends with `shutting_down`.
    func terminate(byShutdown: Bool = false) async {
        let (shells, commands, entrypoint) = state.withLock { s in
            s.deleted = true
            s.endedByShutdown = byShutdown
            s.shell = nil
            return (s.allShells, s.commands, s.entrypoint)
        }
        var roots = Set(shells.map(\.pid))
        var groups = roots
        for cmd in commands where cmd.isAsync && !cmd.exited.isSet {
            if let pid = cmd.pid { roots.insert(pid) }
            if let reporter = cmd.reporter { roots.insert(reporter.pid) }
            if let group = cmd.group { groups.insert(group) }
        }
        if let entrypoint {
            roots.insert(entrypoint.pid)
            groups.insert(entrypoint.pid)
        }
        let known = LockedSet<pid_t>()
        let fixedRoots = roots
        let fixedGroups = groups
        let tagEntry = Array("\(Self.tagVariable)=\(tag)".utf8)
        // The tree is read before anything is signalled, while the parentage is intact.
        let ended = await ProcessKiller.terminate(grace: configuration.killGracePeriod.inSeconds) { table in
            known.update { k in
                k.formUnion(fixedRoots)
                k.formUnion(table.members(ofGroups: fixedGroups))
                k.formUnion(table.descendants(of: k))
                // Daemons that left both the tree and the group still carry the session's tag.
                for entry in table.entries.values where entry.isAlive && !k.contains(entry.pid) {
                    if ProcessTable.environment(of: entry.pid, contains: tagEntry) { k.insert(entry.pid) }
                }
                return k
            }
        }
        if !ended {
            logger.warning("processes survived SIGKILL while deleting the session", metadata: ["session": "\(id)"])
        }
        for shell in shells { shell.closeControl() }
        for child in shells.map(\.child) + (entrypoint.map { [$0] } ?? []) {
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
    }
}
