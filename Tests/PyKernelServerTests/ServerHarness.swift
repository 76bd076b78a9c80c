import Foundation
import JSONRPC
import Logging
import PyKernel
@testable import PyKernelServer
@testable import PyKernelTests  // the one engine of the test process (CPython starts once per process)
import Testing

/// A logger for servers under test: warnings and errors only.
let quietLogger: Logger = {
    var logger = Logger(label: "pykernel.server.tests")
    logger.logLevel = .warning
    return logger
}()

/// A pipe's two descriptors.
struct Pipe {
    let readEnd: Int32
    let writeEnd: Int32

    init() {
        var descriptors: [Int32] = [0, 0]
        precondition(pipe(&descriptors) == 0)
        readEnd = descriptors[0]
        writeEnd = descriptors[1]
    }
}

/// Writes all of `bytes` to `descriptor` (small writes to a pipe; blocking only if it is full).
func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + offset, $0.count - offset) }
        precondition(written > 0 || errno == EINTR)
        if written > 0 { offset += written }
    }
}

/// Lines from a descriptor, read only once the first is asked for (so a test can leave the pipe
/// unread to stall the writer), with no more than 64 KiB read ahead.
final class LineSource: @unchecked Sendable {  // used from one test task at a time
    private let descriptor: Int32
    private var iterator: LineReader.Iterator?
    /// Bytes of the lines returned so far, newlines included.
    private(set) var bytesRead = 0

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// The next line, `nil` at end of file.
    func next() async -> [UInt8]? {
        if iterator == nil {
            iterator = LineReader(fileDescriptor: descriptor, maxPendingLines: 16, maxPendingBytes: 64 << 10).makeAsyncIterator()
        }
        guard case .line(let line)? = await iterator!.next() else { return nil }
        bytesRead += line.count + 1
        return line
    }
}

/// A ``JSONRPCServer`` driven in process through pipes, as a client would drive `pykernel serve`.
final class ServerHarness: @unchecked Sendable {  // used from one test task at a time
    let server: JSONRPCServer
    private let requests: Pipe
    private let responses: Pipe
    private let serving: Task<Void, Never>
    let lines: LineSource
    private var nextID = 0
    /// Messages read while looking for another one, by id (responses) or in order (notifications).
    private var heldResponses: [RequestID: JSONValue] = [:]
    private(set) var notifications: [JSONValue] = []

    /// - Parameter interruptAnswerHold: How long a `code.interrupt` answer waits for company
    ///   (see ``JSONRPCServer/interruptAnswerHold``).
    init(limits: MessageChannel.Limits = MessageChannel.Limits(), interruptAnswerHold: Duration = .milliseconds(2)) async throws {
        let manager = try await engine()
        requests = Pipe()
        responses = Pipe()
        server = JSONRPCServer(
            manager: manager, input: requests.readEnd, output: responses.writeEnd, logger: quietLogger,
            maxLineLength: LineReader.defaultMaxLineLength, extraMethods: [:], outputLimits: limits,
            interruptAnswerHold: interruptAnswerHold)
        serving = Task { [server] in await server.serve() }
        lines = LineSource(descriptor: responses.readEnd)
    }

    /// Ends input, waits for the server to answer everything and stop, and closes the pipes.
    func finish() async {
        close(requests.writeEnd)
        await serving.value
        close(responses.writeEnd)
        while await nextMessage() != nil {}
        close(requests.readEnd)
        close(responses.readEnd)
    }

    /// Sends a request; returns its id.
    @discardableResult
    func request(_ method: String, _ params: JSONValue? = nil) -> RequestID {
        nextID += 1
        var object: JSONObject = ["jsonrpc": "2.0", "id": .integer(Int64(nextID)), "method": .string(method)]
        object["params"] = params
        writeAll(requests.writeEnd, JSONValue.object(object).serialized() + [0x0A])
        return .integer(Int64(nextID))
    }

    /// Sends requests in one write (the server reads them at once); returns their ids.
    func requests(_ calls: [(method: String, params: JSONValue?)]) -> [RequestID] {
        var bytes: [UInt8] = []
        let ids = calls.map { call in
            nextID += 1
            var object: JSONObject = ["jsonrpc": "2.0", "id": .integer(Int64(nextID)), "method": .string(call.method)]
            object["params"] = call.params
            bytes += JSONValue.object(object).serialized() + [0x0A]
            return RequestID.integer(Int64(nextID))
        }
        writeAll(requests.writeEnd, bytes)
        return ids
    }

    /// Sends a notification (a request without an id: executed, never answered).
    func notify(_ method: String, _ params: JSONValue? = nil) {
        var object: JSONObject = ["jsonrpc": "2.0", "method": .string(method)]
        object["params"] = params
        writeAll(requests.writeEnd, JSONValue.object(object).serialized() + [0x0A])
    }

    /// The next message the server wrote, `nil` once output has ended.
    func nextMessage() async -> JSONValue? {
        guard let line = await lines.next() else { return nil }
        return try! JSONValue.parse(line)
    }

    /// The response to `id` (messages read before it are kept: responses by id, notifications in order).
    func response(_ id: RequestID) async -> JSONValue {
        if let held = heldResponses.removeValue(forKey: id) { return held }
        while let message = await nextMessage() {
            if let messageID = message["id"].flatMap(RequestID.init), message["method"] == nil {
                if messageID == id { return message }
                heldResponses[messageID] = message
            } else {
                notifications.append(message)
            }
        }
        Issue.record("the output ended before the response to \(id)")
        return .null
    }

    /// The result of a call, recording an issue when it failed.
    func call(_ method: String, _ params: JSONValue? = nil) async -> JSONValue {
        let reply = await response(request(method, params))
        #expect(reply["error"] == nil, "\(method) failed: \(reply)")
        return reply["result"] ?? .null
    }

    /// The error of a call, recording an issue when it succeeded.
    func error(_ method: String, _ params: JSONValue? = nil) async -> JSONValue {
        let reply = await response(request(method, params))
        #expect(reply["error"] != nil, "\(method) succeeded: \(reply)")
        return reply["error"] ?? .null
    }
}

/// Waits until `condition` holds, polling every millisecond (for states the code under test
/// signals to no one, such as a queue reaching its cap); fails after `limit`.
func waitUntil(_ what: String, limit: Duration = .seconds(20), _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting until \(what)")
            return
        }
        try await Task.sleep(for: .milliseconds(1))
    }
}
