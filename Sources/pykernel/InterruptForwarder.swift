import Dispatch
import Glibc

/// Turns Ctrl-C (SIGINT) into an interrupt of the running code, as `python3` does.
final class InterruptForwarder {
    private let source: any DispatchSourceSignal

    init(_ interrupt: @escaping @Sendable () -> Void) {
        signal(SIGINT, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        source.setEventHandler(handler: interrupt)
        source.resume()
    }

    func cancel() { source.cancel() }
}
