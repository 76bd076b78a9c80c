/// The one output-capping rule of PyKernel (code runs, commands, sessions): of a stream longer
/// than `limit` bytes, keep the first `limit / 2` bytes and the last `limit - limit / 2`, and
/// count the bytes cut between them.
///
/// The stream is taken as text: its invalid UTF-8 becomes U+FFFD as it is appended
/// (``UTF8Sanitizer``: as the whole stream decodes), and every count — the limit, the head and
/// tail, ``totalBytes``, ``omittedBytes`` — is in bytes of that text. So the kept text is at most
/// `limit` bytes however invalid the stream, and its length plus ``omittedBytes`` is the text's
/// full length (a stray byte counts 3, the length of U+FFFD). Both ends are moved to character
/// boundaries (a character split by a cut is cut whole, and counted in ``omittedBytes``). A
/// character still incomplete at the end counts as the stream's end makes it, U+FFFD, in what
/// is read; a later append can still complete it. Memory stays within `limit` plus one appended
/// chunk, whatever the stream's length.
package struct HeadTailBuffer: Sendable {
    /// The most bytes kept (head plus tail).
    package let limit: Int
    private var head: [UInt8] = []
    private var tail: [UInt8] = []
    /// Index in `tail` where the kept tail starts (compacted lazily, without quadratic copying).
    private var tailStart = 0
    /// Every byte of text taken so far (a character still incomplete not counted).
    private var takenBytes = 0
    /// Makes the appended bytes text.
    private var sanitizer = UTF8Sanitizer()

    /// A buffer that keeps at most `limit` bytes (a negative limit counts as 0).
    package init(limit: Int) { self.limit = max(0, limit) }

    private var headLimit: Int { limit / 2 }
    private var tailLimit: Int { limit - limit / 2 }

    /// The length of the stream's text so far, in bytes.
    package var totalBytes: Int { ended.takenBytes }

    /// The buffer as it is once the stream ends now: a character still incomplete taken as U+FFFD.
    private var ended: HeadTailBuffer {
        guard !sanitizer.held.isEmpty else { return self }
        var ended = self
        var sanitizer = ended.sanitizer
        ended.sanitizer = UTF8Sanitizer()
        sanitizer.finish { ended.take($0) }
        return ended
    }

    /// Appends the next bytes of the stream.
    package mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty else { return }
        var sanitizer = self.sanitizer
        self.sanitizer = UTF8Sanitizer()
        sanitizer.append(bytes) { take($0) }
        self.sanitizer = sanitizer
    }

    /// Keeps what the rule keeps of the next valid bytes of the stream.
    private mutating func take(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard !bytes.isEmpty else { return }
        takenBytes += bytes.count
        var rest = bytes[...]
        if head.count < headLimit, tail.isEmpty {
            let taken = rest.prefix(headLimit - head.count)
            head.append(contentsOf: taken)
            rest = rest.dropFirst(taken.count)
        }
        guard !rest.isEmpty, tailLimit > 0 else { return }
        if rest.count >= tailLimit {
            // The chunk alone fills the tail: only its end is copied (a 30 MB message, not 30 MB).
            tail.removeAll(keepingCapacity: true)
            tailStart = 0
            tail.append(contentsOf: rest.suffix(tailLimit))
            return
        }
        tail.append(contentsOf: rest)
        let excess = tail.count - tailStart - tailLimit
        if excess > 0 { tailStart += excess }
        if tailStart > tailLimit {  // amortized O(1) per byte
            tail.removeFirst(tailStart)
            tailStart = 0
        }
    }

    /// Appends raw bytes: the non-generic entry for hot paths in other modules (a generic call
    /// across a module boundary instantiates metadata at run time).
    package mutating func append(_ bytes: UnsafeRawBufferPointer) {
        append(bytes.bindMemory(to: UInt8.self))
    }

    /// Appends the bytes of `text` (UTF-8).
    package mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append($0) }
    }

    /// Appends the bytes of a collection.
    package mutating func append(_ bytes: some Collection<UInt8>) {
        let array = Array(bytes)
        array.withUnsafeBufferPointer { append($0) }
    }

    /// Whether bytes were cut.
    package var isTruncated: Bool { totalBytes > limit }

    /// The kept head and tail, each cut at a character boundary, and the bytes cut between them.
    package func parts() -> (head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>, omittedBytes: Int) {
        ended.keptParts()
    }

    private func keptParts() -> (head: ArraySlice<UInt8>, tail: ArraySlice<UInt8>, omittedBytes: Int) {
        guard takenBytes > limit else { return (head[...] + tail[tailStart...], [], 0) }
        let keptHead = head.prefix(UTF8Text.completePrefixLength(head))
        let rawTail = tail[tailStart...]
        let keptTail = rawTail.dropFirst(UTF8Text.leadingContinuationCount(rawTail))
        return (keptHead, keptTail, takenBytes - keptHead.count - keptTail.count)
    }

    /// The rule applied to a whole text at once, its middle never copied (the `repr` of a 3 GB
    /// string): the kept head and tail, cut at character boundaries, and the bytes cut between them.
    package static func parts(of text: UnsafeRawBufferPointer, limit: Int) -> (head: String, tail: String, omittedBytes: Int) {
        let bytes = text.bindMemory(to: UInt8.self)
        let limit = max(0, limit)
        guard bytes.count > limit else { return (String(decoding: bytes, as: UTF8.self), "", 0) }
        let head = bytes[..<(limit / 2)]
        let tail = bytes[(bytes.count - (limit - limit / 2))...]
        let keptHead = head.prefix(UTF8Text.completePrefixLength(head))
        let keptTail = tail.dropFirst(UTF8Text.leadingContinuationCount(tail))
        return (String(decoding: keptHead, as: UTF8.self), String(decoding: keptTail, as: UTF8.self),
                bytes.count - keptHead.count - keptTail.count)
    }

    /// The first bytes of a text, at most `limit` (a negative limit counts as 0), cut at a
    /// character boundary, and how many bytes were cut after them (an error record's `value`,
    /// whose start matters); the middle and end are never copied.
    package static func head(of text: UnsafeRawBufferPointer, limit: Int) -> (text: String, omittedBytes: Int) {
        let bytes = text.bindMemory(to: UInt8.self)
        guard bytes.count > max(0, limit) else { return (String(decoding: bytes, as: UTF8.self), 0) }
        let head = bytes[..<max(0, limit)]
        let kept = head.prefix(UTF8Text.completePrefixLength(head))
        return (String(decoding: kept, as: UTF8.self), bytes.count - kept.count)
    }

    /// The kept text with its head and tail joined by a line saying how many bytes were left out
    /// (``omissionLine(_:)``), and that count: how a rich result's text and an error record's
    /// traceback are cut at a run's `max_output_bytes`. The whole text when nothing was cut.
    package func markedText() -> (text: String, omittedBytes: Int) {
        guard isTruncated else { return (text(), 0) }
        let (head, tail, omitted) = parts()
        return (UTF8Text.decode(head) + Self.omissionLine(omitted) + UTF8Text.decode(tail), omitted)
    }

    /// The line between the head and the tail of a text cut at a run's `max_output_bytes`.
    package static func omissionLine(_ omittedBytes: Int) -> String {
        "\n[... \(omittedBytes) bytes omitted: longer than max_output_bytes ...]\n"
    }

    /// The bytes cut between head and tail (0 when nothing was cut).
    package var omittedBytes: Int { isTruncated ? parts().omittedBytes : 0 }

    /// The bytes of the kept text (``text()``) before the cut: the kept head, the whole text when
    /// nothing was cut. The head can be 1 to 3 bytes shorter than `limit / 2` (cut at a character
    /// boundary), which the joined text does not tell: a front that marks the cut takes it from here.
    package var keptHeadBytes: Int {
        let ended = self.ended
        guard ended.takenBytes > limit else { return ended.takenBytes }
        return UTF8Text.completePrefixLength(ended.head)
    }

    /// The kept text: the head and the tail joined, with nothing between them.
    package func text() -> String {
        let ended = self.ended
        // Nothing cut, and all of it in the head (a run's usual output): no joined copy.
        if ended.takenBytes <= limit, ended.tailStart == ended.tail.count {
            return ended.head.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }
        }
        let (head, tail, _) = ended.keptParts()
        return UTF8Text.decode(head + tail)
    }
}
