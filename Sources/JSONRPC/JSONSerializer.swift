extension JSONValue {
    /// The compact JSON text of the value as UTF-8 bytes.
    ///
    /// No whitespace is added; object members keep their order. Strings escape `"`, `\`, control
    /// characters (`\n`, `\r`, `\t`, `\b`, `\f`, otherwise `\u00XX`) and U+2028/U+2029; `/` and
    /// other non-ASCII text are written as is. Doubles use the shortest text that reads back to
    /// the same value (integral ones keep a `.0`); NaN and infinities, which JSON cannot express,
    /// are written as `null`.
    public func serialized() -> [UInt8] {
        var output: [UInt8] = []
        write(to: &output)
        return output
    }

    /// Appends the compact JSON text of the value (see ``serialized()``) to `output`.
    public func serialize(into output: inout [UInt8]) {
        write(to: &output)
    }

    /// The compact JSON text of the value; see ``serialized()``.
    public var jsonString: String {
        String(decoding: serialized(), as: UTF8.self)
    }

    private func write(to output: inout [UInt8]) {
        switch self {
        case .null:
            output.append(contentsOf: "null".utf8)
        case .bool(let value):
            output.append(contentsOf: (value ? "true" : "false").utf8)
        case .integer(let value):
            output.append(contentsOf: String(value).utf8)
        case .double(let value):
            output.append(contentsOf: (value.isFinite ? value.description : "null").utf8)
        case .string(let value):
            writeString(value, to: &output)
        case .array(let elements):
            output.append(UInt8(ascii: "["))
            for (offset, element) in elements.enumerated() {
                if offset > 0 { output.append(UInt8(ascii: ",")) }
                element.write(to: &output)
            }
            output.append(UInt8(ascii: "]"))
        case .object(let object):
            output.append(UInt8(ascii: "{"))
            for (offset, (key, value)) in zip(object.keys, object.values).enumerated() {
                if offset > 0 { output.append(UInt8(ascii: ",")) }
                writeString(key, to: &output)
                output.append(UInt8(ascii: ":"))
                value.write(to: &output)
            }
            output.append(UInt8(ascii: "}"))
        }
    }
}

/// Appends `string` as a quoted JSON string, copying unescaped runs in bulk.
private func writeString(_ string: String, to output: inout [UInt8]) {
    var string = string
    string.withUTF8 { utf8 in
        output.reserveCapacity(output.count + utf8.count + 2)
        output.append(UInt8(ascii: "\""))
        var runStart = 0
        var index = 0
        while index < utf8.count {
            let byte = utf8[index]
            let escape: StaticString
            var length = 1
            switch byte {
            case UInt8(ascii: "\""): escape = "\\\""
            case UInt8(ascii: "\\"): escape = "\\\\"
            case 0..<0x20: escape = controlEscapes[Int(byte)]
            case 0xE2 where index + 2 < utf8.count && utf8[index + 1] == 0x80 && utf8[index + 2] & 0xFE == 0xA8:
                escape = utf8[index + 2] == 0xA8 ? "\\u2028" : "\\u2029"
                length = 3
            default:
                index += 1
                continue
            }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
            escape.withUTF8Buffer { output.append(contentsOf: $0) }
            index += length
            runStart = index
        }
        output.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
        output.append(UInt8(ascii: "\""))
    }
}

/// The escape of each control character: the short form where JSON has one, else `\u00XX`.
private let controlEscapes: [StaticString] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
]
