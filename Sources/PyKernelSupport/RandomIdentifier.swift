/// A random (version 4) UUID in lowercase (`8-4-4-4-12` hex digits): the one source of every id
/// the program makes up (contexts of both kinds, PTYs, session commands, session tags, scratch
/// directories). Its 122 random bits come from the system's generator (Swift's
/// `SystemRandomNumberGenerator`: `getrandom(2)`, no file descriptor), so it works when the
/// process is out of file descriptors, where Foundation's `UUID()` on Linux reads
/// `/dev/urandom`, cannot open it and answers the all-zero UUID every time (two contexts got one
/// id). A generator that cannot give random bytes stops the program with a fatal error: it never
/// answers a made-up or repeated id.
package func randomIdentifier() -> String {
    var generator = SystemRandomNumberGenerator()
    var high = generator.next()
    var low = generator.next()
    high = high & ~(0xF << 12) | (0x4 << 12)  // version 4
    low = low & ~(0x3 << 62) | (0x2 << 62)  // RFC 4122 variant
    return String(unsafeUninitializedCapacity: 36) { buffer in
        var index = 0
        for position in 0..<32 {
            if position == 8 || position == 12 || position == 16 || position == 20 {
                buffer[index] = UInt8(ascii: "-")
                index += 1
            }
            let word = position < 16 ? high : low
            let shift = UInt64(60 - (position % 16) * 4)
            buffer[index] = identifierHexDigits[Int((word >> shift) & 0xF)]
            index += 1
        }
        return index
    }
}

/// The lowercase hex digits, by value.
private let identifierHexDigits: [UInt8] = Array("0123456789abcdef".utf8)
