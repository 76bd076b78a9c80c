// libFuzzer entry point for the own JSON parser and serializer (built by scripts/fuzz-json with
// the JSONRPC sources compiled into the same module). Any crash, or a document whose value does
// not survive serialize-then-parse, stops the fuzzer with the input saved as a crash file.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    _ = IncomingMessage.decode(line: bytes)
    guard let value = try? JSONValue.parse(bytes) else { return 0 }
    let text = value.serialized()
    guard let reread = try? JSONValue.parse(text) else {
        fatalError("the serializer wrote a text the parser rejects: \(String(decoding: text, as: UTF8.self).debugDescription)")
    }
    guard reread == value, reread.serialized() == text else {
        fatalError("serialize-then-parse changed the value of \(String(decoding: bytes, as: UTF8.self).debugDescription)")
    }
    return 0
}
