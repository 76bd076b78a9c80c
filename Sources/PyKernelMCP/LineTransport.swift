import Dispatch
import Foundation
import JSONRPC
import Logging
import MCP

/// MCP's stdio transport over the project's own line reader and writer.
///
/// Why not the SDK's `StdioTransport`: it reads a non-blocking descriptor and sleeps 10 ms
/// whenever no byte is waiting, so every request waited up to 10 ms (`tools/call run_python` of
/// `pass`: 10.2 ms median through the official Python client, against 0.41 ms for `code.run`
/// through `pykernel serve`). Here a thread blocks in `read(2)` (``LineReader``, lines up to
/// 64 MiB, bounded hand-off) and writes happen on a serial dispatch queue, never on Swift's
/// cooperative pool.
actor LineTransport: Transport {
    nonisolated let logger: Logger
    private let input: Int32
    private let writer: LineWriter
    private let writes = DispatchQueue(label: "pykernel.mcp.writer")
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var reading: Task<Void, Never>?

    /// A transport reading requests from `input` and writing messages to `output` (neither is closed).
    init(input: Int32, output: Int32, logger: Logger) {
        self.input = input
        self.writer = LineWriter(fileDescriptor: output)
        self.logger = logger
        (messages, continuation) = AsyncThrowingStream.makeStream(of: Data.self)
    }

    func connect() async throws {
        guard reading == nil else { return }
        let lines = LineReader(fileDescriptor: input)
        let continuation = continuation
        let logger = logger
        reading = Task {
            for await element in lines {
                switch element {
                case .line(let bytes):
                    if !bytes.isEmpty { continuation.yield(Data(bytes)) }
                case .tooLong(let length):
                    logger.warning("dropped a message of \(length) bytes: longer than \(LineReader.defaultMaxLineLength) bytes")
                }
            }
            continuation.finish()
        }
    }

    func disconnect() async {
        reading?.cancel()
        continuation.finish()
    }

    func send(_ data: Data) async throws {
        let writer = writer
        let written: Bool = await withCheckedContinuation { done in
            writes.async { done.resume(returning: writer.writeLine(Array(data))) }
        }
        guard written else { throw MCPError.connectionClosed }
    }

    nonisolated func receive() -> AsyncThrowingStream<Data, any Error> { messages }
}
