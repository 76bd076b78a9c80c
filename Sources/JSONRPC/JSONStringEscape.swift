/// Appends the UTF-8 bytes `utf8` as a quoted JSON string: `"`, `\`, control characters (`\b`,
/// `\t`, `\n`, `\f`, `\r`, otherwise `\u00XX`) and U+2028/U+2029 escaped, every other byte as is.
///
/// One pass, eight bytes at a time, into a scratch buffer with room for the worst case of a
/// block (an input byte becomes at most six output bytes), appended to `output` once per block:
/// each word of input is stored before it is tested and the output advances past its clean
/// bytes only, and an escape is one table word stored whole, so a text with an escape every few
/// bytes (printed lines) costs a few instructions per byte and no call per escape.
func appendJSONString(_ utf8: UnsafeBufferPointer<UInt8>, to output: inout [UInt8]) {
    let count = utf8.count
    // The quotes, and room for what usually follows a long string: the end of its message and
    // the line's newline (so adding them does not copy the whole line to a larger buffer).
    // Grown geometrically: `reserveCapacity` alone allocates exactly what it is asked for, so
    // reserving per string would copy the whole message again for each of its strings.
    let needed = output.count + count + 2 + 16
    if output.capacity < needed { output.reserveCapacity(max(needed, 2 * output.capacity)) }
    output.append(UInt8(ascii: "\""))
    guard let source = utf8.baseAddress, count > 0 else {
        output.append(UInt8(ascii: "\""))
        return
    }
    let block = min(count, escapeBlockSize)
    // Six bytes per input byte, two more input bytes (a U+2028 starting at a block's last byte),
    // and eight for the whole-word stores past the end of what is written.
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 6 * (block + 2) + 8) { scratch in
        let start = scratch.baseAddress!
        var index = 0
        while index < count {
            let end = index + min(count - index, escapeBlockSize)
            let written = escapeBlock(source, count, from: &index, to: end, into: start)
            output.append(contentsOf: UnsafeBufferPointer(start: start, count: written))
        }
    }
    output.append(UInt8(ascii: "\""))
}

/// Input bytes escaped per scratch block (the scratch buffer is about six times as large).
private let escapeBlockSize = 2048

/// Escapes `bytes[index..<end]` (a U+2028/U+2029 starting before `end` is taken whole) into
/// `target`, advances `index` past what it read, and returns the number of bytes written.
@inline(__always)
private func escapeBlock(
    _ bytes: UnsafePointer<UInt8>, _ count: Int, from index: inout Int, to end: Int,
    into start: UnsafeMutablePointer<UInt8>
) -> Int {
    let raw = UnsafeRawPointer(bytes)
    var target = UnsafeMutableRawPointer(start)
    var position = index
    while position < end {
        if position + 8 <= end {
            let word = raw.loadUnaligned(fromByteOffset: position, as: UInt64.self)
            target.storeBytes(of: word, as: UInt64.self)
            let flags = escapeFlags(UInt64(littleEndian: word))
            if flags == 0 {
                position += 8
                target += 8
                // A clean word usually starts a clean run (plain text): skip it two words at a
                // time. Printed lines, with a newline in every word, never get here.
                while position + 16 <= end {
                    let first = raw.loadUnaligned(fromByteOffset: position, as: UInt64.self)
                    let second = raw.loadUnaligned(fromByteOffset: position + 8, as: UInt64.self)
                    if escapeFlags(UInt64(littleEndian: first)) | escapeFlags(UInt64(littleEndian: second)) != 0 { break }
                    target.storeBytes(of: first, as: UInt64.self)
                    target.storeBytes(of: second, toByteOffset: 8, as: UInt64.self)
                    position += 16
                    target += 16
                }
                continue
            }
            let clean = flags.trailingZeroBitCount &>> 3
            position += clean
            target += clean
        }
        let byte = bytes[position]
        if byte == 0xE2 {
            if position + 2 < count && bytes[position + 1] == 0x80 && bytes[position + 2] & 0xFE == 0xA8 {
                // `\u2028` or `\u2029`.
                let escape: UInt64 = bytes[position + 2] == 0xA8 ? 0x3832_3032_755C : 0x3932_3032_755C
                target.storeBytes(of: UInt64(littleEndian: escape), as: UInt64.self)
                target += 6
                position += 3
            } else {
                target.storeBytes(of: byte, as: UInt8.self)
                target += 1
                position += 1
            }
        } else if byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
            let escape = escapeWord(byte)
            target.storeBytes(of: UInt64(littleEndian: escape), as: UInt64.self)
            target += Int(truncatingIfNeeded: escape &>> 56)
            position += 1
        } else {
            target.storeBytes(of: byte, as: UInt8.self)
            target += 1
            position += 1
        }
    }
    index = position
    return target - UnsafeMutableRawPointer(start)
}

/// The escape of a control character, `"` or `\` as a little-endian word: its bytes, then its
/// length in the top byte.
@inline(__always)
private func escapeWord(_ byte: UInt8) -> UInt64 {
    switch byte {
    case UInt8(ascii: "\""): return 0x0200_0000_0000_225C
    case UInt8(ascii: "\\"): return 0x0200_0000_0000_5C5C
    case 0x08: return 0x0200_0000_0000_625C  // \b
    case 0x09: return 0x0200_0000_0000_745C  // \t
    case 0x0A: return 0x0200_0000_0000_6E5C  // \n
    case 0x0C: return 0x0200_0000_0000_665C  // \f
    case 0x0D: return 0x0200_0000_0000_725C  // \r
    default:
        // `\u00XX` with lowercase hex digits.
        let high = UInt64(byte &>> 4), low = UInt64(byte & 0xF)
        let lowDigit = low < 10 ? 0x30 + low : 0x57 + low
        return 0x0600_0000_3030_755C | (0x30 + high) << 32 | lowDigit << 40
    }
}

/// For eight bytes read as a little-endian word: the high bit of each byte that is a control
/// character, `"`, `\` or 0xE2 is set (0: none is). The lowest set bit is always exact (a
/// borrow can only mark bytes after a real match), which is all the scan relies on.
@inline(__always)
private func escapeFlags(_ word: UInt64) -> UInt64 {
    let ones: UInt64 = 0x0101_0101_0101_0101
    let highs: UInt64 = 0x8080_8080_8080_8080
    // A byte below 0x80 that is below 0x20 or equal to 0x22 or 0x5C once one is subtracted wraps
    // to 0xFF...: (x - c) & ~x & 0x80 per byte, with the `~x` shared (`x ^ c` keeps x's high bit).
    let ascii = ~word & highs
    let control = word &- ones &* 0x20
    let quote = (word ^ (ones &* 0x22)) &- ones
    let backslash = (word ^ (ones &* 0x5C)) &- ones
    // 0xE2 has its high bit set, so there `~(x ^ c)` keeps x's high bit instead.
    let e2 = (word ^ (ones &* 0xE2)) &- ones
    return ((control | quote | backslash) & ascii) | (e2 & word & highs)
}
