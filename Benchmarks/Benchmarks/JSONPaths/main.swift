// The project's JSON parser/serializer (JSONRPC) next to Foundation's JSONSerialization and
// JSONDecoder/JSONEncoder, on the protocol's real messages (issue 10: "one JSON path").
//
//   cd Benchmarks && swift build -c release --product JSONPaths && .build/release/JSONPaths
//
// Each row times decoding (bytes to a value) and encoding (the value back to bytes) of one message
// and reports the median time per operation over many samples, and the ratio to the own parser.
// JSONSerialization decodes to `[String: Any]`; JSONDecoder/JSONEncoder use typed structs of the
// message with a reused decoder and encoder (the best case for Codable).

import Foundation
import JSONRPC

// MARK: The messages (real output and input of `pykernel serve`, from docs/protocol.md and docs/process-api.md)

let codeRunRequest = #"{"jsonrpc":"2.0","id":7,"method":"code.run","params":{"code":"import time\nfor i in range(3):\n    print(f'Count: {i}', flush=True)\n    time.sleep(0.3)","timeout":10}}"#
let codeOutputNotification = #"{"jsonrpc":"2.0","method":"code.output","params":{"request_id":7,"stream":"stdout","text":"Count: 0\n"}}"#
let runResultResponse = #"{"jsonrpc":"2.0","id":5,"result":{"status":"error","stdout":"","stderr":"","stdout_truncated":false,"stderr_truncated":false,"stdout_omitted_bytes":0,"stderr_omitted_bytes":0,"error":{"name":"ZeroDivisionError","value":"division by zero","traceback":"Traceback (most recent call last):\n  File \"<cell-1>\", line 3, in <module>\n    result = x / y\n             ~~^~~\nZeroDivisionError: division by zero\n"},"execution_count":1,"duration":0.000186}}"#
let sessionExecRequest = #"{"jsonrpc":"2.0","id":102,"method":"session.exec","params":{"session":"s1","command":"for i in 1 2; do echo \"out $i\"; echo \"err $i\" >&2; sleep 0.3; done","run_async":true}}"#
/// A coalesced output chunk of 64 KiB (a run printing lines quickly).
let largeOutputNotification = #"{"jsonrpc":"2.0","method":"code.output","params":{"request_id":8,"stream":"stdout","text":""#
    + String(repeating: "line 1234: the quick brown fox jumps over the lazy dog\\n", count: 1192) + #""}}"#

// MARK: Typed messages for JSONDecoder/JSONEncoder

struct CodeRunRequest: Codable {
    struct Params: Codable { var code: String; var timeout: Double? }
    var jsonrpc: String; var id: Int; var method: String; var params: Params
}
struct OutputNotification: Codable {
    struct Params: Codable { var request_id: Int; var stream: String; var text: String }
    var jsonrpc: String; var method: String; var params: Params
}
struct RunResultResponse: Codable {
    struct ErrorRecord: Codable { var name: String; var value: String; var traceback: String }
    struct Result: Codable {
        var status: String; var stdout: String; var stderr: String
        var stdout_truncated: Bool; var stderr_truncated: Bool
        var stdout_omitted_bytes: Int; var stderr_omitted_bytes: Int
        var error: ErrorRecord?; var execution_count: Int; var duration: Double
    }
    var jsonrpc: String; var id: Int; var result: Result
}
struct SessionExecRequest: Codable {
    struct Params: Codable { var session: String; var command: String; var run_async: Bool? }
    var jsonrpc: String; var id: Int; var method: String; var params: Params
}

// MARK: Timing

nonisolated(unsafe) var sink = 0  // keeps results alive so the optimizer cannot drop the work

/// Median nanoseconds per call of `body` over `samples` samples of `batch` calls each.
func median(samples: Int = 101, batch: Int, _ body: () -> Int) -> Double {
    for _ in 0..<batch { sink &+= body() }  // warm-up
    var perCall: [Double] = []
    perCall.reserveCapacity(samples)
    for _ in 0..<samples {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<batch { sink &+= body() }
        perCall.append(Double(DispatchTime.now().uptimeNanoseconds - start) / Double(batch))
    }
    perCall.sort()
    return perCall[samples / 2]
}

struct Row { let message: String; let implementation: String; let decode: Double; let encode: Double }

func measure<T: Codable>(_ name: String, _ text: String, _ type: T.Type, batch: Int) -> [Row] {
    let bytes = Array(text.utf8)
    let data = Data(bytes)
    let own = try! JSONValue.parse(bytes)
    let any = try! JSONSerialization.jsonObject(with: data)
    let decoder = JSONDecoder()
    let encoder = JSONEncoder()
    let typed = try! decoder.decode(T.self, from: data)
    // Each implementation must read back what it wrote (a sanity check, not timed).
    precondition(try! JSONValue.parse(own.serialized()) == own)
    precondition(NSDictionary(dictionary: try! JSONSerialization.jsonObject(with: JSONSerialization.data(withJSONObject: any)) as! [String: Any]).isEqual(to: any as! [String: Any]))
    _ = try! decoder.decode(T.self, from: encoder.encode(typed))

    return [
        Row(message: name, implementation: "own (JSONRPC)",
            decode: median(batch: batch) { bytes.withUnsafeBytes { (try? JSONValue.parse($0)) == nil ? 0 : 1 } },
            encode: median(batch: batch) { own.serialized().count }),
        Row(message: name, implementation: "JSONSerialization",
            decode: median(batch: batch) { (try? JSONSerialization.jsonObject(with: data)) == nil ? 0 : 1 },
            encode: median(batch: batch) { (try? JSONSerialization.data(withJSONObject: any))?.count ?? 0 }),
        Row(message: name, implementation: "JSONDecoder/Encoder",
            decode: median(batch: batch) { (try? decoder.decode(T.self, from: data)) == nil ? 0 : 1 },
            encode: median(batch: batch) { (try? encoder.encode(typed))?.count ?? 0 }),
    ]
}

func format(_ nanoseconds: Double) -> String {
    nanoseconds >= 10_000 ? String(format: "%.1f µs", nanoseconds / 1000) : String(format: "%.2f µs", nanoseconds / 1000)
}

let rows = measure("code.run request (\(codeRunRequest.utf8.count) B)", codeRunRequest, CodeRunRequest.self, batch: 200)
    + measure("code.output notification (\(codeOutputNotification.utf8.count) B)", codeOutputNotification, OutputNotification.self, batch: 200)
    + measure("run result response (\(runResultResponse.utf8.count) B)", runResultResponse, RunResultResponse.self, batch: 200)
    + measure("session.exec request (\(sessionExecRequest.utf8.count) B)", sessionExecRequest, SessionExecRequest.self, batch: 200)
    + measure("code.output, 64 KiB text (\(largeOutputNotification.utf8.count) B)", largeOutputNotification, OutputNotification.self, batch: 10)

print("| Message | Implementation | Decode (median) | Encode (median) | Decode + encode | vs own |")
print("|---|---|---:|---:|---:|---:|")
var ownTotal: [String: Double] = [:]
for row in rows {
    let total = row.decode + row.encode
    if row.implementation.hasPrefix("own") { ownTotal[row.message] = total }
    let ratio = total / ownTotal[row.message, default: total]
    print("| \(row.message) | \(row.implementation) | \(format(row.decode)) | \(format(row.encode)) | \(format(total)) | \(String(format: "%.1f×", ratio)) |")
}
if sink == 42 { print("") }
