import JSONRPC
@testable import PyKernelServer
@testable import PyKernelTests
import Testing

/// A run's `code.output` and `code.result` notifications are written as encoded lines (params
/// member by member, the result's fragment spliced): byte for byte the lines the trees made.
@Suite("Notification lines: the bytes of a run's notifications", .exclusiveEngine, .serialized, .timeLimit(.minutes(5)))
struct NotificationLineTests {
    /// The line a notification about request `id` had when its params were a tree.
    private static func treeLine(_ method: String, _ id: RequestID, _ fields: [(String, JSONValue)]) -> [UInt8] {
        RPCMessage.notification(method: method, params: .object(JSONObject([("request_id", id.jsonValue)] + fields)))
    }

    private static func result(_ text: String, main: Bool) -> JSONValue {
        ["is_main_result": .bool(main), "data": ["text/plain": .string(text)], "metadata": [:], "chart": nil]
    }

    /// Streamed while the run waits for input (the task's path), then sent with the response (the
    /// path of the thread where the run ends): every line as the tree wrote it.
    @Test func streamedAndFinalNotificationsAreTheTreesBytes() async throws {
        let harness = try await ServerHarness()
        let code = "print('é\\t\"x', flush=True)\ndisplay({'k': 'a\\n'})\nprint('\\u2028', end='')\ninput()"
        let run = harness.request("code.run", ["code": .string(code), "allow_stdin": true])
        var lines: [[UInt8]] = []
        while let line = await harness.lines.next() {
            let message = try JSONValue.parse(line)
            if message["method"] == "code.input_request" {
                harness.request("code.input", ["request_id": run.jsonValue, "value": "z\"é"])
                continue
            }
            if message["method"] == nil {
                if message["id"].flatMap(RequestID.init) == run { break }
                continue  // the answer to code.input
            }
            lines.append(line)
        }
        let expected = [
            Self.treeLine("code.output", run, [("stream", "stdout"), ("text", "é\t\"x\n")]),
            Self.treeLine("code.result", run, [("result", Self.result("{'k': 'a\\n'}", main: false))]),
            Self.treeLine("code.output", run, [("stream", "stdout"), ("text", "\u{2028}")]),
            Self.treeLine("code.result", run, [("result", Self.result("'z\"é'", main: true))]),
        ]
        #expect(lines.map { String(decoding: $0, as: UTF8.self) } == expected.map { String(decoding: $0, as: UTF8.self) })
        await harness.finish()
    }
}
