/// Keeps the most recent `limit` bytes of a stream, in chunks, without quadratic copying.
struct TailBuffer: Sendable {
    let limit: Int
    private var chunks: [[UInt8]] = []
    private var total = 0
    /// Whether bytes were dropped from the front.
    private(set) var truncated = false

    init(limit: Int) { self.limit = max(0, limit) }

    mutating func append(_ bytes: some Collection<UInt8>) {
        guard !bytes.isEmpty else { return }
        chunks.append(Array(bytes))
        total += bytes.count
        while let first = chunks.first, total - first.count >= limit {
            total -= first.count
            chunks.removeFirst()
            truncated = true
        }
    }

    /// The kept bytes: at most `limit`, starting at a character boundary when truncated.
    func bytes() -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(min(total, limit))
        for c in chunks { result.append(contentsOf: c) }
        if result.count > limit {
            result.removeFirst(result.count - limit)
            return UTF8Text.dropLeadingContinuationBytes(result)
        }
        return truncated ? UTF8Text.dropLeadingContinuationBytes(result) : result
    }

    /// Whether the stream was longer than `limit`.
    var isTruncated: Bool { truncated || total > limit }

    /// The kept bytes as text.
    func text() -> String { UTF8Text.decode(bytes()) }
}

/// UTF-8 decoding that never fails: invalid bytes become U+FFFD.
enum UTF8Text {
    static func decode(_ bytes: some Collection<UInt8>) -> String {
        String(decoding: bytes, as: UTF8.self)
    }

    /// Drops up to three continuation bytes at the start (after cutting a stream at an arbitrary byte).
    static func dropLeadingContinuationBytes(_ bytes: [UInt8]) -> [UInt8] {
        var start = 0
        while start < min(3, bytes.count) && bytes[start] & 0xC0 == 0x80 { start += 1 }
        return start == 0 ? bytes : Array(bytes[start...])
    }

    /// The length of the longest prefix that does not end inside a multi-byte character, so
    /// that a character split across two reads is decoded whole with the next read.
    static func completePrefixLength(_ bytes: some BidirectionalCollection<UInt8>) -> Int {
        let count = bytes.count
        var index = bytes.endIndex
        var back = 0
        while index > bytes.startIndex && back < 4 {
            index = bytes.index(before: index)
            back += 1
            let b = bytes[index]
            if b & 0x80 == 0 { return count }  // ASCII: complete
            if b & 0xC0 == 0x80 { continue }  // continuation: keep looking for the lead byte
            let needed = b & 0xE0 == 0xC0 ? 2 : b & 0xF0 == 0xE0 ? 3 : b & 0xF8 == 0xF0 ? 4 : 1
            return back >= needed ? count : count - back
        }
        return count
    }
}

/// Quotes a string for a POSIX shell: `'...'` with embedded quotes as `'\''`.
func shellQuote(_ s: String) -> String {
    if !s.isEmpty && s.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/._-+:=@%,".contains($0)) }) {
        return s
    }
    return "'" + s.replacing("'", with: "'\\''") + "'"
}
