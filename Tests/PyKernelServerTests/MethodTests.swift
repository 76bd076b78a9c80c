import Foundation
import JSONRPC
import PyKernel
import PyKernelProcess
@testable import PyKernelServer
@testable import PyKernelTests
import Testing

@Suite("Kernel methods: mapping and error conventions", .sharedEngine, .timeLimit(.minutes(5)))
struct MethodTests {
    @Test func kernelInfoNamesEveryMethod() async throws {
        let harness = try await ServerHarness()
        let info = await harness.call("kernel.info")
        #expect(info["name"] == "pykernel")
        #expect(info["protocol_version"] == .integer(Int64(JSONRPCServer.protocolVersion)))
        #expect(info["methods"] == ["code.input", "code.interrupt", "code.run", "context.create", "context.delete", "context.list", "context.restart", "kernel.info", "shutdown"])
        await harness.finish()
    }

    @Test func contextsAreCreatedListedAndDeleted() async throws {
        let harness = try await ServerHarness()
        let created = await harness.call("context.create", ["cwd": "/tmp"])
        #expect(created["language"] == "python" && created["cwd"] == "/tmp")
        let id = try #require(created["id"]?.stringValue)
        let listed = await harness.call("context.list")
        #expect(listed["contexts"]?.arrayValue?.contains { $0["id"] == .string(id) } == true)
        #expect(await harness.call("context.delete", ["id": .string(id)]) == [:])
        let gone = await harness.error("context.delete", ["id": .string(id)])
        #expect(gone["code"] == .integer(Int64(ApplicationErrorCode.contextNotFound)))
        #expect(gone["data"] == ["reason": "context_not_found"])
        await harness.finish()
    }

    @Test func aRunStreamsItsOutputThenAnswersTheResult() async throws {
        let harness = try await ServerHarness()
        let context = await harness.call("context.create")["id"] ?? .null
        let id = harness.request("code.run", ["code": "print('a' * 50 + 'b' * 50)", "max_output_bytes": 10, "context": context])
        let reply = await harness.response(id)
        let result = try #require(reply["result"]?.objectValue)
        // A stream that was cut says where its head ends (stdout's here; stderr was not cut).
        #expect(result.keys == ["status", "stdout", "stderr", "stdout_truncated", "stderr_truncated", "stdout_omitted_bytes",
                                "stderr_omitted_bytes", "stdout_head_bytes", "error", "execution_count", "duration", "results"])
        #expect(result["status"] == "ok" && result["error"] == .null && result["results"] == .array([]))
        #expect(result["stdout"] == .string("aaaaa" + "bbbb\n"))
        #expect(result["stdout_truncated"] == true && result["stdout_omitted_bytes"] == 91 && result["stdout_head_bytes"] == 5)
        #expect(result["stderr_truncated"] == false && result["stderr_omitted_bytes"] == 0)
        let seconds = try #require(result["duration"]?.doubleValue)
        #expect(seconds >= 0 && seconds < 10)
        // Every byte came before the response, in code.output notifications of this request.
        let text = harness.notifications.filter { $0["params"]?["request_id"] == id.jsonValue }.compactMap { $0["params"]?["text"]?.stringValue }
        #expect(harness.notifications.allSatisfy { $0["method"] == "code.output" })
        #expect(text.joined() == String(repeating: "a", count: 50) + String(repeating: "b", count: 50) + "\n")
        await harness.finish()
    }

    @Test func unknownMethodsAreNamed() async throws {
        let harness = try await ServerHarness()
        let error = await harness.error("code.execute")
        #expect(error["code"] == -32601 && error["data"] == ["method": "code.execute"])
        await harness.finish()
    }

    /// Every -32602 of the kernel methods: `data` is exactly `{reason, field}`.
    @Test(arguments: [
        ("code.run", nil, "invalid_argument", "code"),
        ("code.run", ["code": 1], "invalid_argument", "code"),
        ("code.run", ["print(1)"], "invalid_argument", "params"),
        ("code.run", ["code": "1", "context": 5], "invalid_argument", "context"),
        ("code.run", ["code": "1", "env": ["A": 1]], "invalid_argument", "env"),
        ("code.run", ["code": "1", "env": ["A=B": "1"]], "invalid_argument", "env"),
        ("code.run", ["code": "1", "timeout": "soon"], "invalid_argument", "timeout"),
        ("code.run", ["code": "1", "timeout": -1], "invalid_argument", "timeout"),
        ("code.run", ["code": "1", "max_output_bytes": -1], "invalid_argument", "max_output_bytes"),
        ("code.run", ["code": "1", "max_output_bytes": 1.5], "invalid_argument", "max_output_bytes"),
        ("context.create", ["cwd": "/no/such/dir"], "invalid_cwd", "cwd"),
        ("context.create", ["cwd": 5], "invalid_argument", "cwd"),
        ("context.create", ["language": "ruby"], "invalid_argument", "language"),
        ("context.delete", [:], "invalid_argument", "id"),
        ("code.interrupt", [:], "invalid_argument", "context"),
    ] as [(String, JSONValue?, String, String)])
    func invalidParamsNameTheirReasonAndField(method: String, params: JSONValue?, reason: String, field: String) async throws {
        let harness = try await ServerHarness()
        let error = await harness.error(method, params)
        #expect(error["code"] == -32602)
        #expect(error["data"] == ["reason": .string(reason), "field": .string(field)])
        await harness.finish()
    }

    /// A param a method does not take is refused before the method runs: the code is not run.
    @Test(arguments: [
        ("code.run", ["code": "x = 1", "context_id": "default"], "context_id"),
        ("code.run", ["code": "x = 1", "timeout_ms": 100], "timeout_ms"),
        ("context.create", ["cwd": "/tmp", "name": "mine"], "name"),
        ("context.list", ["all": true], "all"),
        ("code.interrupt", ["force": true], "force"),
    ] as [(String, JSONObject, String)])
    func unknownParamsAreRefusedAndNamed(method: String, params: JSONObject, field: String) async throws {
        let harness = try await ServerHarness()
        let context = await harness.call("context.create")["id"] ?? .null
        var params = params
        if method.hasPrefix("code.") { params["context"] = context }
        let error = await harness.error(method, .object(params))
        #expect(error["code"] == -32602)
        #expect(error["data"] == ["reason": "unknown_parameter", "field": .string(field)])
        #expect(error["message"]?.stringValue?.hasPrefix("params.\(field) is not a parameter of \(method) (") == true)
        let run = await harness.call("code.run", ["code": "print(globals().get('x'))", "context": context])
        #expect(run["stdout"] == "None\n")
        await harness.finish()
    }

    /// Every method the server answers (the process API's too) has its params listed.
    @Test func everyMethodListsItsParams() async throws {
        let service = try ProcessService(configuration: ProcessServiceConfiguration(workingDirectory: NSTemporaryDirectory()))
        let server = JSONRPCServer(
            manager: try await engine(), input: -1, output: -1, logger: quietLogger, extraMethods: ProcessMethods.handlers(service))
        #expect(server.methodNames.count > 20)
        #expect(Set(server.methodNames) == Set(JSONRPCServer.methodParameters.keys))
    }

    @Test func applicationErrorsHaveSnakeCaseReasons() async throws {
        let harness = try await ServerHarness()
        let undeletable = await harness.error("context.delete", ["id": "default"])
        #expect(undeletable["code"] == -32002 && undeletable["data"] == ["reason": "default_context_undeletable"])
        let unknown = await harness.error("code.run", ["code": "1", "context": "nope"])
        #expect(unknown["code"] == -32001 && unknown["data"] == ["reason": "context_not_found"])
        await harness.finish()
    }

    /// The engine's codes map to the protocol's, with the engine's field or the method's.
    @Test func engineErrorsMapToProtocolErrors() {
        let full = RPCError(KernelError(.runQueueFull, "too many"))
        #expect(full.code == ApplicationErrorCode.runQueueFull && full.code == -32007 && full.data == ["reason": "run_queue_full"])
        let shutDown = RPCError(KernelError(.shutDown, "bye"))
        #expect(shutDown.code == -32005 && shutDown.data == ["reason": "shutting_down"])
        let own = RPCError(KernelError(.invalidArgument, "bad", field: "timeout"), field: "env")
        #expect(own.code == -32602 && own.data == ["reason": "invalid_argument", "field": "timeout"])
        let fallback = RPCError(KernelError(.invalidWorkingDirectory, "missing"), field: "cwd")
        #expect(fallback.data == ["reason": "invalid_cwd", "field": "cwd"])
        #expect(RPCError(KernelError(.initializationFailed, "no")).code == RPCError.Code.internalError)
    }

    /// The hint that wakes the interpreter before a line is decoded: the method's name as a whole
    /// JSON string in a short line; anything else is left to the decoder (and loses nothing).
    @Test func aProbableInterruptIsRecognisedBeforeDecoding() {
        func hint(_ text: String) -> Bool { JSONRPCServer.mayInterrupt(Array(text.utf8)) }
        #expect(hint(#"{"jsonrpc":"2.0","id":7,"method":"code.interrupt","params":{"context":"default"}}"#))
        #expect(hint(#"{"params": {"context": "x"}, "method" : "code.interrupt", "id": 1, "jsonrpc": "2.0"}"#))
        #expect(hint(#""code.interrupt""#))
        #expect(!hint(#"{"jsonrpc":"2.0","id":7,"method":"code.run","params":{"code":"print(1)"}}"#))
        #expect(!hint(#"{"jsonrpc":"2.0","id":7,"method":"code.run","params":{"code":"s = \"code.interrupt\""}}"#))
        #expect(!hint(#"{"method":"code.interrupted"}"#))
        #expect(!hint(#""code.interrupt"#))
        #expect(!hint(""))
        let long = #"{"jsonrpc":"2.0","id":7,"method":"code.interrupt","params":{"context":"default"}}"# + String(repeating: " ", count: 1024)
        #expect(!hint(long))
        // The running context is looked for the same way: as a whole string.
        let line = Array(#"{"method":"code.interrupt","params":{"context":"ab-1"}}"#.utf8)
        #expect(JSONRPCServer.holdsString(line, "ab-1".utf8))
        #expect(!JSONRPCServer.holdsString(line, "ab".utf8))
        #expect(!JSONRPCServer.holdsString(line, "b-1".utf8))
        #expect(JSONRPCServer.holdsString(Array(#"x "" y"#.utf8), "".utf8))
    }
}
