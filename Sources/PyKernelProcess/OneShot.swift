import Glibc
import PyKernelSupport
import Synchronization

/// Live children of `exec` and `code_run`, so that ``ProcessService/shutdown()`` can kill them.
final class ChildRegistry: Sendable {
    private struct State {
        var children: [pid_t: ChildProcess] = [:]
        var closed = false
        /// Calls between ``beginCall()`` and ``endCall()``: a child is inserted only once spawned,
        /// after its process may already run (and a shutdown have closed the registry).
        var calls = 0
    }
    private let state = Mutex(State())
    /// Fired once the registry is closed and every call has returned (its output read).
    let emptied = Latch<Bool>()

    /// A call that may spawn a child begins (before it spawns).
    func beginCall() { state.withLock { $0.calls += 1 } }

    /// The call ``beginCall()`` began has returned.
    func endCall() {
        let empty = state.withLock { state in
            state.calls -= 1
            return state.closed && state.calls == 0
        }
        if empty { _ = emptied.fire(true) }
    }

    /// Adds a live child; `false` once the registry is closed (a shutdown killed the others
    /// while this one was being started): the caller kills it.
    func insert(_ child: ChildProcess) -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.children[child.pid] = child
            return true
        }
    }

    func remove(_ child: ChildProcess) { _ = state.withLock { $0.children.removeValue(forKey: child.pid) } }

    /// Closes the registry (children added later are refused) and returns the live children.
    func close() -> [ChildProcess] {
        let (live, idle) = state.withLock { state in
            state.closed = true
            return (Array(state.children.values), state.calls == 0)
        }
        if idle { _ = emptied.fire(true) }
        return live
    }
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
    registry.beginCall()
    defer { registry.endCall() }
    let collector = OutputCollector(limit: configuration.outputLimit)
    let (child, pump) = try await ChildProcess.spawn(spec, monitor: monitor, output: collector)
    if !registry.insert(child) { child.signalGroup(SIGKILL) }  // started as the service shut down
    defer {
        registry.remove(child)
        child.release()
    }

    let grace = configuration.killGracePeriod.inSeconds
    let timedOut = await withTaskCancellationHandler {
        if let timeout {
            if await child.exited.wait(timeout: timeout.inSeconds) != nil { return false }
            // Exited just as the deadline came, before its exit was reported: it ended by itself.
            if Task.isCancelled || child.hasExitedNow { return false }
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
