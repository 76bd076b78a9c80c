import Dispatch
import Foundation

/// The signals that shut a server down, `pykernel serve` and `pykernel mcp` alike: SIGTERM (how a
/// host stops it; MCP's stdio clients send it when the server has not exited after they closed
/// its input), SIGINT (Ctrl-C) and SIGHUP (the terminal or session it ran in ended). Each is taken
/// by a dispatch source instead of ending the process at once, so that what the server started —
/// runs, workers, commands in process groups of their own — ends with it (docs/protocol.md,
/// "End of input, `shutdown`, SIGTERM"; docs/mcp.md).
enum ShutdownSignals {
    static let numbers = [SIGTERM, SIGINT, SIGHUP]

    /// Calls `shutDown` on a dispatch queue whenever one of ``numbers`` arrives, until the
    /// returned sources are cancelled.
    static func handle(_ shutDown: @escaping @Sendable () -> Void) -> [any DispatchSourceSignal] {
        numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler(handler: shutDown)
            source.resume()
            return source
        }
    }
}
