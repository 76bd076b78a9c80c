import Dispatch
import Synchronization

/// Keeps `tools/call` requests reaching the engine in the order they were read.
///
/// The SDK handles each request in a task of its own, and tasks start in no set order: a
/// `create_context` and a `run_python` in it, or two runs on one context, written one after the
/// other could reach the engine swapped (a pipelining client saw its second run go first). So
/// the transport hands the SDK the next message only once the call before it has *reached the
/// engine* — its run submitted (not finished), its context created, or it failed — which the
/// call's handler says with ``pass(_:)``, or once the call has been answered, or after
/// ``patience`` (a call the SDK never hands to the handler stops holding the rest back then).
/// Calls still run side by side: a run's turn passes as it is submitted.
final class CallOrder: Sendable {
    /// How long a call may hold the next message back at most.
    static let patience = DispatchTimeInterval.seconds(1)

    /// One call's place in the order: what its handler passes.
    struct Turn: Equatable {
        fileprivate let number: UInt64
    }

    private struct State {
        var turn = Turn(number: 0)
        var passed = true
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// The transport is about to hand the SDK a call: its turn starts.
    func arm() {
        state.withLock { state in
            state = State(turn: Turn(number: state.turn.number + 1), passed: false, waiter: nil)
        }
    }

    /// The turn of the call the SDK was handed last: the calling handler's, taken as it starts
    /// (the next call is handed over only once this one has passed).
    var current: Turn { state.withLock { $0.turn } }

    /// `turn`'s call has reached the engine (or will not): the next message may go. A turn
    /// already over is ignored.
    func pass(_ turn: Turn) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.turn == turn else { return nil }
            state.passed = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits until the call handed over last has passed its turn, at most ``patience``; at once
    /// when it has (the usual case for a client that waits for each answer: no suspension).
    func waitForTurn() async {
        let (turn, passed) = state.withLock { ($0.turn, $0.passed) }
        guard !passed else { return }
        // A timer on a dispatch queue, left to fire: by then the turn is over and it does
        // nothing (a task per call, slept and cancelled, cost two thread wake-ups per call).
        DispatchQueue.global().asyncAfter(deadline: .now() + Self.patience) { [self] in pass(turn) }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let passed = state.withLock { state in
                if !state.passed { state.waiter = continuation }
                return state.passed
            }
            if passed { continuation.resume() }
        }
    }
}
