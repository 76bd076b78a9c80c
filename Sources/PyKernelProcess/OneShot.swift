import Glibc
import PyKernelSupport
import Synchronization

/// Live children of `exec` and `code_run`, so that ``ProcessService/shutdown()`` can kill them.
final class ChildRegistry: Sendable {
    private let children = Mutex<[pid_t: ChildProcess]>([:])

    func insert(_ child: ChildProcess) { children.withLock { $0[child.pid] = child } }
    func remove(_ child: ChildProcess) { _ = children.withLock { $0.removeValue(forKey: child.pid) } }
    func all() -> [ChildProcess] { children.withLock { Array($0.values) } }
}

/// The outcome of a one-shot run.
struct OneShotOutcome: Sendable {
    var result: ExecResult
}

/// Runs one process to completion with its output captured in memory (`exec`, `code_run`).
///
/// The process leads a new process group; stdin is `spec.stdin` (`/dev/null` by default); stdout and stderr are two
/// pipes read by one thread with `poll`, so the interleaved text is in arrival order.
///
/// When the timeout fires, the group gets `SIGTERM`, then `SIGKILL` after the grace period if
/// the leader is still alive. After the leader exits (for whatever reason), the call keeps
/// reading for at most the drain window, then kills whatever is left of the group with
/// `SIGKILL` — a one-shot command leaves nothing running, and a background process holding
/// the output pipe open cannot make the call hang. If the calling task is cancelled, the group
/// is killed at once.
func runOneShot(
    _ spec: Posix.SpawnSpec, timeout: Duration?, configuration: ProcessServiceConfiguration,
    registry: ChildRegistry
) async throws(ProcessAPIError) -> OneShotOutcome {
    let (pid, stdoutFD, stderrFD) = try Posix.spawnWithOutputPipes(spec)

    let collector = OutputCollector(limit: configuration.outputLimit)
    let pump = StreamPump(stdoutFD: stdoutFD, stderrFD: stderrFD, name: "pykernel-run-\(pid)") { stream, bytes in
        collector.append(stream, bytes)
    }
    let child = ChildProcess(pid: pid)
    registry.insert(child)
    defer {
        registry.remove(child)
        child.release()
    }

    let grace = configuration.killGracePeriod.inSeconds
    let timedOut = await withTaskCancellationHandler {
        if let timeout {
            if await child.exited.wait(timeout: timeout.inSeconds) != nil { return false }
            if Task.isCancelled { return false }
            child.signalGroup(SIGTERM)
            if await child.exited.wait(timeout: grace) == nil { child.signalGroup(SIGKILL) }
            return true
        }
        _ = await child.exited.wait()
        return false
    } onCancel: {
        child.signalGroup(SIGKILL)
    }
    if Task.isCancelled { child.signalGroup(SIGKILL) }
    let exitCode = await child.exited.waitUncancellable() ?? -1

    // Output written by leftovers of the group, then the leftovers themselves.
    if await pump.finished.waitUncancellable(timeout: configuration.drainWindow.inSeconds) == nil {
        child.signalGroup(SIGKILL)
        if await pump.finished.waitUncancellable(timeout: 0.2) == nil {
            pump.stop()
            _ = await pump.finished.waitUncancellable()
        }
    } else {
        child.signalGroup(SIGKILL)
    }
    return OneShotOutcome(result: collector.result(exitCode: exitCode, timedOut: timedOut))
}
