import Dispatch
import Foundation
import Synchronization

/// The signals that shut a server down, `pykernel serve` and `pykernel mcp` alike: SIGTERM (how a
/// host stops it; MCP's stdio clients send it when the server has not exited after they closed
/// its input), SIGINT (Ctrl-C) and SIGHUP (the terminal or session it ran in ended). Each is taken
/// by a dispatch source instead of ending the process at once, so that what the server started —
/// runs, workers, commands in process groups of their own — ends with it (docs/protocol.md,
/// "End of input, `shutdown`, SIGTERM"; docs/mcp.md).
///
/// They are taken as soon as the embedded Python has started (``take()``), before the rest of the
/// start-up (a slow `--preload`, the default process context's worker): one that arrives then is
/// kept, and shuts the server down as soon as it serves (``shutDown(with:)``). A signal that came
/// ignored stays ignored, as python3 leaves it (`nohup pykernel serve`, `trap '' INT`).
final class ShutdownSignals {
    static let numbers = [SIGTERM, SIGINT, SIGHUP]

    private let response = Response()
    private let sources: [any DispatchSourceSignal]

    /// Takes each of ``numbers`` that the process did not come ignoring, once the embedded Python
    /// has started: CPython fills its table of handlers from the process's actions as it starts,
    /// and a dispatch source's handler would be `None` there (python3's `SIG_DFL` and
    /// `default_int_handler` gone for the code, `_thread.interrupt_main()` doing nothing).
    static func take() -> ShutdownSignals {
        ShutdownSignals()
    }

    private init() {
        let response = response
        sources = Self.numbers.filter { !SignalDisposition.isIgnored($0) }.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { response.signalArrived() }
            source.resume()
            return source
        }
    }

    /// From now on a signal calls `shutDown` (on a dispatch queue); one that arrived before calls
    /// it at once.
    func shutDown(with shutDown: @escaping @Sendable () -> Void) {
        response.shutDown(with: shutDown)
    }

    /// Stops taking the signals (they stay ignored: the server is ending).
    func cancel() {
        sources.forEach { $0.cancel() }
    }

    /// What a signal does: remembered until the server serves, then its shutdown.
    private final class Response: Sendable {
        private enum State {
            case remembering(arrived: Bool)
            case shuttingDown(@Sendable () -> Void)
        }

        private let state = Mutex(State.remembering(arrived: false))

        func shutDown(with shutDown: @escaping @Sendable () -> Void) {
            let arrivedBefore = state.withLock { state in
                defer { state = .shuttingDown(shutDown) }
                if case .remembering(arrived: true) = state { return true }
                return false
            }
            if arrivedBefore { shutDown() }
        }

        func signalArrived() {
            let action = state.withLock { state -> (@Sendable () -> Void)? in
                switch state {
                case .remembering: state = .remembering(arrived: true); return nil
                case .shuttingDown(let action): return action
                }
            }
            action?()
        }
    }
}

/// What the process does with a signal.
enum SignalDisposition {
    /// Whether the process ignores `signal` (SIG_IGN): before anything of the program's sets it,
    /// whether it came ignored.
    static func isIgnored(_ signal: Int32) -> Bool {
        var action = sigaction()
        sigaction(signal, nil, &action)
        return action.__sigaction_handler.sa_handler.map {
            unsafeBitCast($0, to: UInt.self) == unsafeBitCast(SIG_IGN, to: UInt.self)
        } ?? false
    }
}
