import Glibc

/// Splits a byte stream into newline-terminated lines of at most `maxLineLength` bytes, in linear
/// time whatever the chunking. A longer line is never buffered past the limit: it is skipped up to
/// its newline and reported as ``Piece/tooLong(_:)`` with its length. A `\r` the splitter drops
/// (before the `\n`) is not counted, in the limit or in that length. Used by every line reader of
/// the project (the protocol's input, a session shell's status pipe).
package struct LineSplitter: Sendable {
    /// What the splitter hands out.
    package enum Piece: Sendable, Hashable {
        /// A line's bytes, without its `\n` (and without one trailing `\r` when asked). May be empty.
        case line([UInt8])
        /// A line longer than the limit, skipped; its length in bytes.
        case tooLong(Int)
    }

    package let maxLineLength: Int
    private let dropsCarriageReturn: Bool
    /// The start of the current line, when it spans chunks.
    private var partial: [UInt8] = []
    /// The length so far of a line being skipped for exceeding `maxLineLength`.
    private var skipped: Int?
    /// The last byte of the line being skipped is a `\r`.
    private var skippedEndsWithCarriageReturn = false

    /// - Parameter dropsCarriageReturn: whether one `\r` before the `\n` is removed.
    package init(maxLineLength: Int, dropsCarriageReturn: Bool = true) {
        self.maxLineLength = maxLineLength
        self.dropsCarriageReturn = dropsCarriageReturn
    }

    /// Feeds the next bytes, calling `emit` for every line they complete.
    /// - Returns: `false` as soon as `emit` returns `false` (the consumer has gone).
    package mutating func feed(_ bytes: UnsafeRawBufferPointer, _ emit: (Piece) -> Bool) -> Bool {
        guard var start = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return true }
        let end = start + bytes.count
        while start < end {
            guard let found = memchr(start, 0x0A, end - start) else {
                append(UnsafeBufferPointer(start: start, count: end - start))
                return true
            }
            let newline = UnsafePointer<UInt8>(found.assumingMemoryBound(to: UInt8.self))
            append(UnsafeBufferPointer(start: start, count: newline - start))
            guard emit(takeLine()) else { return false }
            start = newline + 1
        }
        return true
    }

    /// At end of input: hands out a last line that had no newline, if any.
    package mutating func finish(_ emit: (Piece) -> Bool) {
        if skipped != nil || !partial.isEmpty { _ = emit(takeLine()) }
    }

    private mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        let endsWithCarriageReturn = (bytes.last ?? partial.last) == 0x0D
        if let length = skipped {
            skipped = length + bytes.count
            if !bytes.isEmpty { skippedEndsWithCarriageReturn = endsWithCarriageReturn }
        } else if partial.count + bytes.count > maxLineLength + (dropsCarriageReturn && endsWithCarriageReturn ? 1 : 0) {
            // A line at the limit may be followed by the `\r` of its `\r\n`: kept until what
            // comes next shows whether the `\n` follows it.
            skipped = partial.count + bytes.count
            skippedEndsWithCarriageReturn = endsWithCarriageReturn
            partial = []
        } else {
            partial.append(contentsOf: bytes)
        }
    }

    private mutating func takeLine() -> Piece {
        defer {
            partial = []
            skipped = nil
            skippedEndsWithCarriageReturn = false
        }
        if let length = skipped { return .tooLong(dropsCarriageReturn && skippedEndsWithCarriageReturn ? length - 1 : length) }
        if dropsCarriageReturn && partial.last == 0x0D { partial.removeLast() }
        return .line(partial)
    }
}
