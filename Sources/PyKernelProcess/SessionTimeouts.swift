import Glibc
import Logging
import PyKernelSupport
import Synchronization

/// Ending commands whose timeout fired.
extension Session {

    /// Stops the synchronous command: `SIGUSR2` to the shell (its trap returns from the sourced
    /// command as soon as the shell regains control), then `SIGTERM`/grace/`SIGKILL` to the
    /// processes the command started — the members of the shell's process group and the
    /// shell's descendants that were not there before it (`preexisting`) and are not an
    /// asynchronous command's (with bash those lead their own groups, outside the shell's tree).
    /// So a child that left the tree (`(cmd &)`, reparented to init) ends too, as it does in
    /// `process.exec`; one that left the group (`setsid`) runs on. If the shell still does not
    /// report the command's end, the shell itself is killed; the next command starts a new one.
    func stopForegroundCommand(_ cmd: SessionCommand, shell: SessionShell, preexisting: Set<ProcessTable.Identity>) async {
        shell.child.signal(SIGUSR2)
        let known = LockedSet<pid_t>()
        let shellPID = shell.pid
        let outcome = await ProcessKiller.terminate(grace: configuration.killGracePeriod.inSeconds, hardLimit: 1) { [self] table in
            if cmd.exited.isSet {
                // The shell is free again and may be starting other commands: stop looking for
                // new processes, finish off the ones already found.
                return known.contents()
            }
            let running = self.state.withLock { $0.commands }.filter { $0.isAsync && !$0.exited.isSet }
            let asyncRoots = Set(running.compactMap(\.pid) + running.compactMap { $0.reporter?.pid })
            let mine = table.members(ofGroups: [shellPID]).union(table.descendants(of: [shellPID]))
                .subtracting([shellPID]).subtracting(asyncRoots).subtracting(table.descendants(of: asyncRoots))
                .filter { table.entries[$0].map { !preexisting.contains($0.identity) } ?? false }
            known.formUnion(mine)
            return known.contents()
        }
        if !outcome.ended {
            logger.warning("processes survived SIGKILL while ending a command after its timeout", metadata: ["session": "\(id)"])
        }
        if await cmd.exited.waitUncancellable(timeout: configuration.killGracePeriod.inSeconds + 0.5) == nil {
            shell.child.signal(SIGKILL)
            if await cmd.exited.waitUncancellable(timeout: 2) == nil {
                complete(cmd, 128 + SIGKILL)
            }
        }
    }

    /// The processes of the shell that exist now (members of its process group and its
    /// descendants): what a synchronous command about to run did not start.
    static func processes(of shellPID: pid_t) -> Set<ProcessTable.Identity> {
        var table = ProcessTable.snapshot()
        if !table.isComplete { table = DescriptorReserve.released { ProcessTable.snapshot() } }
        return Set(table.members(ofGroups: [shellPID]).union(table.descendants(of: [shellPID])).compactMap { table.entries[$0]?.identity })
    }

    /// Ends an asynchronous command that outlives its timeout: its processes (its subshell, the
    /// members of its process group — children that left its tree, `(cmd &)`, too — and their
    /// descendants) get `SIGTERM`, then `SIGKILL` after the grace period; the reporter then
    /// reports the exit (usually 143).
    func expire(_ cmd: SessionCommand, after timeout: Duration) async {
        if await cmd.exited.wait(timeout: timeout.inSeconds) != nil { return }
        guard let subshell = cmd.pid else { return }
        let groups: Set<pid_t> = cmd.group.map { [$0] } ?? []
        let identity = cmd.identity
        let known = LockedSet<pid_t>()
        let outcome = await ProcessKiller.terminate(grace: configuration.killGracePeriod.inSeconds, hardLimit: 1) { table in
            known.update { k in
                if identity == nil || table.entries[subshell]?.identity == identity { k.insert(subshell) }
                k.formUnion(table.members(ofGroups: groups))
                k.formUnion(table.descendants(of: k))
                return k
            }
        }
        if !outcome.ended {
            logger.warning("processes survived SIGKILL while ending a command after its timeout", metadata: ["session": "\(id)"])
        }
        if await cmd.exited.wait(timeout: 1) == nil {
            if let identity = cmd.identity { ProcessKiller.signal(identity, SIGKILL) }
            complete(cmd, 128 + SIGKILL)
        }
    }
}
