import JSONRPC
import PyKernel
import PyKernelSupport
@testable import PyKernelServer
import Testing

/// A result's JSON, written once as a fragment: the same text as the tree it replaced.
@Suite struct ResultJSONTests {
    /// The tree the wire had before fragments: `{is_main_result, data (sorted MIME types), metadata, chart}`,
    /// JSON types parsed (numbers kept as written), a text that does not parse kept as a string.
    private static func tree(_ result: RichResult) -> JSONValue {
        var data = JSONObject()
        for mime in result.data.keys.sorted() {
            let value = result.data[mime]!
            let isJSON = mime == "application/json" || mime.hasSuffix("+json")
            data[mime] = isJSON ? ((try? JSONValue.parse(value, numbersAsWritten: true)) ?? .string(value)) : .string(value)
        }
        let metadata = (try? JSONValue.parse(result.metadataJSON, numbersAsWritten: true)) ?? .object([:])
        let chart = result.chartJSON.flatMap { try? JSONValue.parse($0, numbersAsWritten: true) } ?? .null
        return ["is_main_result": .bool(result.isMainResult), "data": .object(data), "metadata": metadata, "chart": chart]
    }

    static let results: [RichResult] = [
        RichResult(isMainResult: true, data: ["text/plain": "2"]),
        RichResult(isMainResult: false, data: ["text/plain": "'a\"\\\n\u{2028}é'"]),
        RichResult(isMainResult: true, data: [
            "text/plain": "<x>", "text/html": "<b>x</b>", "application/json": #"{"a": [1, 2.5, null]}"#,
            "application/vnd.x+json": "[true]", "application/geo+json": "not json", "image/png": "iVBORw0KGgo=",
        ], metadataJSON: #"{"image/png": {"width": 640, "height": 480}}"#, chartJSON: #"{"type": "line", "elements": [{"label": "y", "points": [[0, 1.5]]}]}"#),
        RichResult(isMainResult: false, data: ["text/plain": "x"], metadataJSON: "not json", chartJSON: "not json"),
        RichResult(isMainResult: true, data: ["text/plain": ""], metadataJSON: "{}", chartJSON: "null"),
        // Near the usual `text/plain`-alone result, each differing in one part.
        RichResult(isMainResult: true, data: ["text/plain": "1"], metadataJSON: #"{"a": 1}"#),
        RichResult(isMainResult: false, data: ["text/html": "<i>"]),
        RichResult(isMainResult: true, data: ["text/plain": "x", "text/html": "<i>"]),
        // Made by the native path for a value shown by its `repr`.
        RichResult(isMainResult: true, text: "'a\"\\\n\u{2028}é'"),
        RichResult(isMainResult: false, text: ""),
    ]

    @Test("Numbers of a JSON representation, metadata and chart go out as Python wrote them")
    func numbersAsPythonWroteThem() {
        let result = RichResult(
            isMainResult: true,
            data: ["text/plain": "J()", "application/json": #"{"id": 12345678901234567890123, "f": 1000000000000000.0, "n": [-0.0, 7, 1e+16]}"#],
            metadataJSON: #"{"big": 18446744073709551617}"#, chartJSON: #"{"x": [-36893488147419103232]}"#)
        #expect(JSONRPCServer.richResultJSON(result).jsonString == #"{"is_main_result":true,"data":{"application/json":"#
            + #"{"id":12345678901234567890123,"f":1000000000000000.0,"n":[-0.0,7,1e+16]},"text/plain":"J()"},"#
            + #""metadata":{"big":18446744073709551617},"chart":{"x":[-36893488147419103232]}}"#)
    }

    @Test(arguments: results)
    func aResultsFragmentIsItsTreesText(result: RichResult) throws {
        let json = JSONRPCServer.richResultJSON(result)
        guard case .fragment = json else {
            Issue.record("not a fragment: \(json)")
            return
        }
        #expect(json.serialized() == Self.tree(result).serialized())
    }

    @Test("A bundle of `text/plain` alone is the same result however it was made")
    func aTextAloneBundleIsOneValue() {
        let native = RichResult(isMainResult: true, text: "42")
        let fromData = RichResult(isMainResult: true, data: ["text/plain": "42"])
        #expect(native == fromData && native.hashValue == fromData.hashValue)
        #expect(native.data == ["text/plain": "42"] && native.text == "42" && fromData.textOnly == "42")
        #expect(native != RichResult(isMainResult: false, text: "42") && native != RichResult(isMainResult: true, text: "4"))
        let two = RichResult(isMainResult: true, data: ["text/plain": "42", "text/html": "<b>42</b>"])
        #expect(two.textOnly == nil && two.text == "42" && two != native)
        #expect(RichResult(isMainResult: true, data: ["text/html": "<i>"]).textOnly == nil)
        #expect(RichResult(isMainResult: true, data: ["text/plain": "42"], metadataJSON: #"{"a": 1}"#) != native)
        #expect(String(describing: native) == #"RichResult(isMainResult: true, data: ["text/plain": "42"], metadataJSON: "{}", chartJSON: nil)"#)
    }

    /// The response's result as a tree, as the wire had it before fragments.
    private static func tree(_ run: ExecutionResult) -> JSONValue {
        let error: JSONValue = run.error.map { record in
            var members: JSONObject = ["name": .string(record.name), "value": .string(record.value), "traceback": .string(record.traceback)]
            // Only a record cut at the run's `max_output_bytes` says so.
            if record.valueOmittedBytes > 0 || record.tracebackOmittedBytes > 0 {
                members["truncated"] = .bool(true)
                members["value_omitted_bytes"] = .integer(Int64(record.valueOmittedBytes))
                members["traceback_omitted_bytes"] = .integer(Int64(record.tracebackOmittedBytes))
            }
            return .object(members)
        } ?? .null
        var members: JSONObject = [
            "status": .string(run.status.rawValue), "stdout": .string(run.stdout), "stderr": .string(run.stderr),
            "stdout_truncated": .bool(run.stdoutTruncated), "stderr_truncated": .bool(run.stderrTruncated),
            "stdout_omitted_bytes": .integer(Int64(run.stdoutOmittedBytes)), "stderr_omitted_bytes": .integer(Int64(run.stderrOmittedBytes))]
        // Only a stream that was cut says where its head ends.
        if run.stdoutOmittedBytes > 0 { members["stdout_head_bytes"] = .integer(Int64(run.stdoutHeadBytes)) }
        if run.stderrOmittedBytes > 0 { members["stderr_head_bytes"] = .integer(Int64(run.stderrHeadBytes)) }
        members["error"] = error
        members["execution_count"] = .integer(Int64(run.executionCount))
        members["duration"] = .double((run.duration.inSeconds * 1e6).rounded() / 1e6)
        members["results"] = .array(run.results.map(tree))
        return .object(members)
    }

    static let runs: [ExecutionResult] = [
        ExecutionResult(status: .ok, stdout: "", stderr: "", error: nil, executionCount: 1, duration: .microseconds(12)),
        ExecutionResult(
            status: .ok, stdout: "out\n\u{1}\"é", stderr: "warn\n", stdoutOmittedBytes: 7, stdoutHeadBytes: 4, error: nil, executionCount: 3,
            duration: .nanoseconds(1_234_567), results: results),
        ExecutionResult(
            status: .error, stdout: "", stderr: "", error: ErrorRecord(name: "ZeroDivisionError", value: "division by zero", traceback: "Traceback:\n  ...\n"),
            executionCount: 9, duration: .seconds(2)),
        ExecutionResult(
            status: .error, stdout: "", stderr: "",
            error: ErrorRecord(name: "ValueError", value: "xx", traceback: "Tr\n[... 9 bytes omitted: longer than max_output_bytes ...]\nxx\n",
                               valueOmittedBytes: 30_000_000, tracebackOmittedBytes: 9),
            executionCount: 10, duration: .seconds(1)),
        // Large output: built as a tree (serialized once, into the response).
        ExecutionResult(
            status: .timeout, stdout: String(repeating: "line\n", count: 20_000), stderr: "x", stderrOmittedBytes: 1 << 40, stderrHeadBytes: 0,
            error: ErrorRecord(name: "TimeoutError", value: "", traceback: ""), executionCount: 4, duration: .milliseconds(5), results: results),
        ExecutionResult(
            status: .error, stdout: String(repeating: "line\n", count: 20_000), stderr: "",
            error: ErrorRecord(name: "E", value: "", traceback: "E\n", tracebackOmittedBytes: 1), executionCount: 5, duration: .seconds(1)),
    ]

    /// The response, fragment or tree, reusing the results sent in the notifications or not: the
    /// same text as the tree it replaced.
    @Test(arguments: runs)
    func aResponsesResultIsItsTreesText(run: ExecutionResult) {
        let expected = Self.tree(run).serialized()
        let streamed = run.results.map(JSONRPCServer.richResultJSON)
        #expect(JSONRPCServer.resultJSON(run, streamedResults: streamed).serialized() == expected)
        #expect(JSONRPCServer.resultJSON(run).serialized() == expected)
        #expect(RPCMessage.response(id: .integer(5), result: JSONRPCServer.resultJSON(run))
            == RPCMessage.response(id: .integer(5), result: Self.tree(run)))
        // Read as a value (the MCP front does): the same members.
        #expect(JSONRPCServer.resultJSON(run)["stdout"]?.stringValue == run.stdout)
        #expect(JSONRPCServer.resultJSON(run)["results"]?.arrayValue?.count == run.results.count)
    }

    @Test func aSmallResultIsAFragment() {
        guard case .fragment = JSONRPCServer.resultJSON(Self.runs[1]) else {
            Issue.record("not a fragment")
            return
        }
    }
}
