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
///
/// At the end of input the stream of messages ends once every request read has been answered,
/// or ``endOfInputGrace`` later: the SDK handles each request in a task of its own and ends its
/// loop (and `pykernel mcp` its process) when the stream ends, so a client that wrote its
/// requests and closed its end lost every answer still in progress; and MCP's stdio clients close
/// their end to shut the server down, so a run still going after the grace is not waited for. A
/// line that is not JSON is answered here, with a null id as JSON-RPC says (the SDK answered it
/// with a random id).
actor LineTransport: Transport {
    nonisolated let logger: Logger
    private let input: Int32
    private let writer: LineWriter
    private let writes = DispatchQueue(label: "pykernel.mcp.writer")
    private let messages: AsyncThrowingStream<Data, any Error>
    private let continuation: AsyncThrowingStream<Data, any Error>.Continuation
    private var reading: Task<Void, Never>?
    /// Requests read and not answered yet (by id: how many of each).
    private var unanswered: [RequestID: Int] = [:]
    private var inputEnded = false

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
                    guard bytes.contains(where: { !Self.isWhitespace($0) }) else { continue }
                    let message: JSONValue
                    do throws(JSONParseError) {
                        message = try JSONValue.parse(bytes)
                    } catch {
                        try? await write(RPCMessage.errorResponse(id: nil, error: .parseError(
                            "Parse error: \(error)", data: ["offset": .integer(Int64(error.offset))])))
                        continue
                    }
                    if let problem = Self.invalidRequest(message) {
                        try? await write(RPCMessage.errorResponse(id: nil, error: .invalidRequest("Invalid Request: \(problem)")))
                        continue
                    }
                    noteRead(message)
                    continuation.yield(Data(bytes))
                case .tooLong(let length):
                    logger.warning("dropped a message of \(length) bytes: longer than \(LineReader.defaultMaxLineLength) bytes")
                }
            }
            await endOfInput()
        }
    }

    /// How a message with a top-level `method` begins (the SDK sorts keys): a notification.
    private static let notificationStart = Array(#"{"jsonrpc":"2.0","method":"#.utf8)

    /// How long calls still running at the end of input may take to be answered.
    static let endOfInputGrace = Duration.seconds(2)

    private func endOfInput() async {
        inputEnded = true
        guard !unanswered.isEmpty else { return continuation.finish() }
        try? await Task.sleep(for: Self.endOfInputGrace)
        if !unanswered.isEmpty {
            logger.warning("end of input: \(unanswered.values.reduce(0, +)) call(s) still running after \(Self.endOfInputGrace) are not answered")
        }
        continuation.finish()
    }

    func disconnect() async {
        reading?.cancel()
        continuation.finish()
    }

    func send(_ data: Data) async throws {
        let bytes = Array(data)
        try await write(bytes)
        // A notification (every chunk of output is one) answers nothing: not parsed.
        if !unanswered.isEmpty, !bytes.starts(with: Self.notificationStart), let message = try? JSONValue.parse(bytes) {
            noteSent(message)
        }
        if inputEnded, unanswered.isEmpty { continuation.finish() }
    }

    private func write(_ bytes: [UInt8]) async throws {
        let writer = writer
        let written: Bool = await withCheckedContinuation { done in
            writes.async { done.resume(returning: writer.writeLine(bytes)) }
        }
        guard written else { throw MCPError.connectionClosed }
    }

    /// Counts the requests of a message read (a batch's too); a cancelled request is answered by
    /// nobody (MCP: no response to a cancelled request).
    private func noteRead(_ message: JSONValue) {
        if let batch = message.arrayValue {
            for element in batch { noteRead(element) }
            return
        }
        guard let method = message["method"]?.stringValue else { return }
        if method == "notifications/cancelled" {
            if let id = message["params"]?["requestId"].flatMap(Self.answerableID) { settle(id) }
        } else if let id = message["id"].flatMap(Self.answerableID) {
            unanswered[id, default: 0] += 1
        }
    }

    /// Counts the responses of a message sent (a batch's too).
    private func noteSent(_ message: JSONValue) {
        if let batch = message.arrayValue {
            for element in batch { noteSent(element) }
            return
        }
        guard message["method"] == nil, let id = message["id"].flatMap(Self.answerableID) else { return }
        settle(id)
    }

    private func settle(_ id: RequestID) {
        guard let count = unanswered[id] else { return }
        unanswered[id] = count > 1 ? count - 1 : nil
    }

    /// The id of a request the SDK answers under the same id: a string or an integer (it answers
    /// others, if at all, under an id of its own).
    private static func answerableID(_ value: JSONValue) -> RequestID? {
        switch RequestID(value) {
        case .some(.integer(let id)): .integer(id)
        case .some(.string(let id)): .string(id)
        default: nil
        }
    }

    /// Why a message read is not one the SDK answers (it dropped these, or answered them under a
    /// random id): not an object or a batch of them, an empty batch, or a request whose id is not
    /// a string or an integer (MCP: "the ID MUST NOT be null"). `nil`: hand it to the SDK.
    private static func invalidRequest(_ message: JSONValue) -> String? {
        if let batch = message.arrayValue {
            if batch.isEmpty { return "a batch must not be empty" }
            return batch.lazy.compactMap(invalidRequest).first
        }
        guard case .object = message else { return "a message must be a JSON object" }
        guard message["method"] != nil, let id = message["id"] else { return nil }
        return answerableID(id) == nil ? "a request's id must be a string or an integer (never null in MCP)" : nil
    }

    private static func isWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    nonisolated func receive() -> AsyncThrowingStream<Data, any Error> { messages }
}
