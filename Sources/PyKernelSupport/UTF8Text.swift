/// UTF-8 helpers for streams cut at arbitrary bytes: decoding never fails (invalid bytes become
/// U+FFFD) and cuts are moved to character boundaries.
package enum UTF8Text {
    /// The bytes as text; invalid UTF-8 becomes U+FFFD.
    package static func decode(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// How many continuation bytes (at most three) start `bytes`: what to drop after cutting a
    /// stream at an arbitrary byte so that the rest starts on a character.
    package static func leadingContinuationCount(_ bytes: some Collection<UInt8>) -> Int {
        var count = 0
        for byte in bytes.prefix(3) {
            guard byte & 0xC0 == 0x80 else { break }
            count += 1
        }
        return count
    }

    /// The length of the longest prefix that does not end inside a multi-byte character, so
    /// that a character split across two reads is decoded whole with the next read.
    package static func completePrefixLength(_ bytes: some BidirectionalCollection<UInt8>) -> Int {
        let count = bytes.count
        var index = bytes.endIndex
        var back = 0
        while index > bytes.startIndex && back < 4 {
            index = bytes.index(before: index)
            back += 1
            let byte = bytes[index]
            if byte & 0x80 == 0 { return count }  // ASCII: complete
            if byte & 0xC0 == 0x80 { continue }  // continuation: keep looking for the lead byte
            let needed = byte & 0xE0 == 0xC0 ? 2 : byte & 0xF0 == 0xE0 ? 3 : byte & 0xF8 == 0xF0 ? 4 : 1
            return back >= needed ? count : count - back
        }
        return count
    }
}
