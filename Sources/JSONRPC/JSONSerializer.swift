import PyKernelSupport

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
            appendStatic("null", to: &output)
        case .bool(let value):
            appendStatic(value ? "true" : "false", to: &output)
        case .integer(let value):
            writeInteger(value, to: &output)
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
        case .fragment(let fragment):
            fragment.bytes.withUnsafeBufferPointer { output.append(contentsOf: $0) }
        }
    }
}

/// Appends a literal's bytes (one copy, no `String` in between).
@inline(__always)
func appendStatic(_ text: StaticString, to output: inout [UInt8]) {
    text.withUTF8Buffer { output.append(contentsOf: $0) }
}

/// Appends the decimal digits of `value` (with `-` when negative), as `String(value)` writes them.
func writeInteger(_ value: Int64, to output: inout [UInt8]) {
    withUnsafeTemporaryAllocation(byteCount: maxDecimalLength, alignment: 1) { buffer in
        let end = buffer.baseAddress! + maxDecimalLength
        let start = writeDecimal(value, endingAt: end)
        output.append(contentsOf: UnsafeRawBufferPointer(start: start, count: end - start))
    }
}

/// Appends `string` as a quoted JSON string (see ``appendJSONString(_:to:)``).
func writeString(_ string: String, to output: inout [UInt8]) {
    var string = string
    string.withUTF8 { appendJSONString($0, to: &output) }
}
