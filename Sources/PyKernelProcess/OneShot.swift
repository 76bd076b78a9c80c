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

/// Runs one process to completion with its output captured in memory (`exec`, `code_run`).
///
/// The process leads a new process group; stdin is `spec.stdin` (`/dev/null` by default);
/// stdout and stderr are two pipes read on the service's monitor thread, so the interleaved
/// text is in arrival order.
///
/// The teardown ladder: when the timeout fires, the group gets `SIGTERM`, then `SIGKILL` after
/// the grace period if the leader is still alive. After the leader exits (for whatever reason),
/// the call keeps reading for at most the drain window, then kills whatever is left of the
/// group with `SIGKILL` — a one-shot command leaves nothing running, and a background process
/// holding the output pipe open cannot make the call hang. Every group signal is sent before
/// the leader is reaped. If the calling task is cancelled, the group is killed at once.
/// (swift-subprocess's `TeardownStep` ladder runs only on cancellation and stops at the
/// leader's exit, which would leave the rest of the group behind: the ladder is kept here.)
func runOneShot(
    _ spec: SpawnSpec, timeout: Duration?, configuration: ProcessServiceConfiguration,
    registry: ChildRegistry, monitor: IOMonitor
) async throws(ProcessAPIError) -> ExecResult {
    let collector = OutputCollector(limit: configuration.outputLimit)
    let (child, pump) = try await ChildProcess.spawn(spec, monitor: monitor) { stream, bytes in
        collector.append(stream, bytes)
    }
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
    return collector.result(exitCode: exitCode, timedOut: timedOut)
}
