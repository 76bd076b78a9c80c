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
            output.append(contentsOf: fragment.bytes)
        }
    }
}

/// Appends a literal's bytes (one copy, no `String` in between).
@inline(__always)
private func appendStatic(_ text: StaticString, to output: inout [UInt8]) {
    text.withUTF8Buffer { output.append(contentsOf: $0) }
}

/// Appends the decimal digits of `value` (with `-` when negative), as `String(value)` writes them.
private func writeInteger(_ value: Int64, to output: inout [UInt8]) {
    // Digits from the last, into a 20-byte buffer (Int64.min has 19 digits and a sign).
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
    withUnsafeMutableBytes(of: &digits) { buffer in
        var magnitude = value.magnitude
        var start = buffer.count
        repeat {
            start -= 1
            buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
        if value < 0 {
            start -= 1
            buffer[start] = UInt8(ascii: "-")
        }
        output.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[start...]))
    }
}

/// Appends `string` as a quoted JSON string.
///
/// Two passes over the UTF-8 bytes: the first measures the escaped text, the second writes it
/// straight into the grown array (runs copied with `memcpy`, escapes stored in place), so a text
/// with an escape every few bytes (printed lines) costs no `append` call per run. Both passes
/// scan eight bytes at a time: a word with no byte that may need escaping (a control
/// character, `"`, `\`, or 0xE2, the first byte of U+2028/U+2029) is skipped whole, and in any
/// other word the scan jumps to its first such byte.
private func writeString(_ string: String, to output: inout [UInt8]) {
    var string = string
    string.withUTF8 { utf8 in
        let count = utf8.count
        var length = count
        if let source = utf8.baseAddress {
            forEachEscape(source, count) { _, escape, replaced in length += escape.utf8CodeUnitCount - replaced }
        }
        let start = output.count
        // The quotes, and room for what usually follows a long string: the end of its message and
        // the line's newline (so adding them does not copy the whole line to a larger buffer).
        // Grown geometrically: `reserveCapacity` alone allocates exactly what it is asked for, so
        // reserving per string would copy the whole message again for each of its strings.
        let needed = start + length + 2 + 16
        if output.capacity < needed { output.reserveCapacity(max(needed, 2 * output.capacity)) }
        guard length > count, let source = utf8.baseAddress else {
            // Nothing to escape: one copy.
            output.append(UInt8(ascii: "\""))
            output.append(contentsOf: utf8)
            output.append(UInt8(ascii: "\""))
            return
        }
        output.append(contentsOf: repeatElement(0, count: length + 2))
        output.withUnsafeMutableBufferPointer { buffer in
            var target = buffer.baseAddress! + start
            target.pointee = UInt8(ascii: "\"")
            target += 1
            var copied = 0
            forEachEscape(source, count) { index, escape, replaced in
                copyBytes(to: target, from: source + copied, count: index - copied)
                target += index - copied
                copyBytes(to: target, from: escape.utf8Start, count: escape.utf8CodeUnitCount)
                target += escape.utf8CodeUnitCount
                copied = index + replaced
            }
            target.update(from: source + copied, count: count - copied)
            target += count - copied
            target.pointee = UInt8(ascii: "\"")
        }
    }
}

/// Copies `count` bytes; the short copies between escapes of a text with many (printed lines:
/// a `\n` every few bytes) with two overlapping loads and stores instead of a `memcpy` call.
@inline(__always)
private func copyBytes(to target: UnsafeMutablePointer<UInt8>, from source: UnsafePointer<UInt8>, count: Int) {
    let from = UnsafeRawPointer(source)
    let to = UnsafeMutableRawPointer(target)
    switch count {
    case 0:
        return
    case 1:
        target.pointee = source.pointee
    case 2...3:
        let first = from.loadUnaligned(as: UInt16.self)
        let last = from.loadUnaligned(fromByteOffset: count - 2, as: UInt16.self)
        to.storeBytes(of: first, as: UInt16.self)
        to.storeBytes(of: last, toByteOffset: count - 2, as: UInt16.self)
    case 4...7:
        let first = from.loadUnaligned(as: UInt32.self)
        let last = from.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)
        to.storeBytes(of: first, as: UInt32.self)
        to.storeBytes(of: last, toByteOffset: count - 4, as: UInt32.self)
    case 8...16:
        let first = from.loadUnaligned(as: UInt64.self)
        let last = from.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        to.storeBytes(of: first, as: UInt64.self)
        to.storeBytes(of: last, toByteOffset: count - 8, as: UInt64.self)
    default:
        target.update(from: source, count: count)
    }
}

/// Calls `body(offset, escape, replaced)` for each byte of `bytes` that JSON text must escape
/// (`replaced` is 1), and each U+2028/U+2029 (3 bytes replaced), in order.
@inline(__always)
private func forEachEscape(_ bytes: UnsafePointer<UInt8>, _ count: Int, _ body: (Int, StaticString, Int) -> Void) {
    let raw = UnsafeRawPointer(bytes)
    var index = 0
    while index < count {
        if index + 8 <= count {
            let flags = escapeFlags(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)))
            if flags == 0 {
                index += 8
                continue
            }
            index += flags.trailingZeroBitCount / 8
        }
        let byte = bytes[index]
        switch byte {
        case UInt8(ascii: "\""): body(index, "\\\"", 1)
        case UInt8(ascii: "\\"): body(index, "\\\\", 1)
        case 0..<0x20: body(index, controlEscapes[Int(byte)], 1)
        case 0xE2 where index + 2 < count && bytes[index + 1] == 0x80 && bytes[index + 2] & 0xFE == 0xA8:
            body(index, bytes[index + 2] == 0xA8 ? "\\u2028" : "\\u2029", 3)
            index += 3
            continue
        default:
            break
        }
        index += 1
    }
}

/// For eight bytes read as a little-endian word: the high bit of each byte that is a control
/// character, `"`, `\` or 0xE2 is set (0: none is). The lowest set bit is always exact (a
/// borrow can only mark bytes after a real match), which is all the scan relies on.
@inline(__always)
private func escapeFlags(_ word: UInt64) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highs: UInt64 = 0x8080_8080_8080_8080
    func zeroBytes(_ value: UInt64) -> UInt64 { (value &- ones) & ~value & highs }
    let control = (word &- ones &* 0x20) & ~word & highs
    return control | zeroBytes(word ^ (ones &* 0x22)) | zeroBytes(word ^ (ones &* 0x5C)) | zeroBytes(word ^ (ones &* 0xE2))
}

/// The escape of each control character: the short form where JSON has one, else `\u00XX`.
private let controlEscapes: [StaticString] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
]
