import JSONRPC
import PyKernel
@testable import PyKernelServer
import Testing

/// A result's JSON, written once as a fragment: the same text as the tree it replaced.
@Suite struct ResultJSONTests {
    /// The tree the wire had before fragments: `{is_main_result, data (sorted MIME types), metadata, chart}`,
    /// JSON types parsed, a text that does not parse kept as a string.
    private static func tree(_ result: RichResult) -> JSONValue {
        var data = JSONObject()
        for mime in result.data.keys.sorted() {
            let value = result.data[mime]!
            let isJSON = mime == "application/json" || mime.hasSuffix("+json")
            data[mime] = isJSON ? ((try? JSONValue.parse(value)) ?? .string(value)) : .string(value)
        }
        let metadata = (try? JSONValue.parse(result.metadataJSON)) ?? .object([:])
        let chart = result.chartJSON.flatMap { try? JSONValue.parse($0) } ?? .null
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
    ]

    @Test(arguments: results)
    func aResultsFragmentIsItsTreesText(result: RichResult) throws {
        let json = JSONRPCServer.richResultJSON(result)
        guard case .fragment = json else {
            Issue.record("not a fragment: \(json)")
            return
        }
        #expect(json.serialized() == Self.tree(result).serialized())
    }

    /// The response reuses the fragments sent in the notifications: the same text as with trees.
    @Test func aResponseWithStreamedResultsIsTheSameText() {
        let run = ExecutionResult(
            status: .ok, stdout: "out\n", stderr: "", error: nil, executionCount: 3, duration: .microseconds(1234),
            results: Self.results)
        let streamed = Self.results.map(JSONRPCServer.richResultJSON)
        let withTrees = JSONRPCServer.resultJSON(run, streamedResults: Self.results.map(Self.tree))
        #expect(JSONRPCServer.resultJSON(run, streamedResults: streamed).serialized() == withTrees.serialized())
        #expect(JSONRPCServer.resultJSON(run).serialized() == withTrees.serialized())
        #expect(JSONRPCServer.resultJSON(run)["results"]?.arrayValue?.first?["data"]?["text/plain"] == "2")
    }
}
