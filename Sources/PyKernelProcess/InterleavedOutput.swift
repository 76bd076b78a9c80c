import PyKernelSupport

/// Interleaves stdout and stderr into one stream by whole UTF-8 characters (the `result` of
/// `process.*`, the `output` of sessions).
///
/// Each stream's bytes pass through in the order they arrive, except an incomplete character
/// at the end of a write: it is held back until the stream's next write completes it, so that
/// the other stream's bytes never land inside a character (a `é` split across two writes of
/// stdout, with stderr writing between them, stays `é`). A held sequence that stays incomplete
/// — the stream's next write does not continue it, or the stream ends — enters as its
/// decoding, U+FFFD (as the stream alone decodes it), so that it cannot join bytes of the other
/// stream into a character neither stream wrote: the interleaved text is the streams' decoded
/// characters in arrival order. At most 3 bytes are held per stream. For valid UTF-8 the
/// interleaved stream holds exactly the bytes of both streams.
struct CharacterInterleaver {
    /// The incomplete character held back for each stream (stdout, stderr): a lead byte and
    /// the continuation bytes that followed it.
    private var held: [[UInt8]] = [[], []]

    private static func index(_ stream: OutputStreamName) -> Int { stream == .stdout ? 0 : 1 }

    /// Passes the next bytes of `stream` to `emit` (in one or two pieces), holding back an
    /// incomplete character at their end.
    mutating func append(
        _ stream: OutputStreamName, _ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) -> Void
    ) {
        let index = Self.index(stream)
        var rest = bytes.bindMemory(to: UInt8.self)[...]
        if !held[index].isEmpty {
            let needed = Self.sequenceLength(held[index][0])
            while held[index].count < needed, let byte = rest.first, byte & 0xC0 == 0x80 {
                held[index].append(byte)
                rest = rest.dropFirst()
            }
            if held[index].count < needed {
                // Still incomplete, and nothing else came: wait for the stream's next write.
                if rest.isEmpty { return }
                // Cut short by a byte that continues no character: its decoding, U+FFFD.
                emitDecoded(index, emit)
            } else {
                held[index].withUnsafeBytes(emit)
                held[index] = []
            }
        }
        let complete = UTF8Text.completePrefixLength(rest)
        if complete > 0 { emit(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: rest.prefix(complete)))) }
        held[index] = Array(rest.dropFirst(complete))
    }

    /// `stream` has ended: a character it left incomplete enters as its decoding (U+FFFD).
    mutating func end(_ stream: OutputStreamName, emit: (UnsafeRawBufferPointer) -> Void) {
        let index = Self.index(stream)
        if !held[index].isEmpty { emitDecoded(index, emit) }
    }

    /// Emits the held bytes of a character that will not be completed as their decoding (U+FFFD).
    private mutating func emitDecoded(_ index: Int, _ emit: (UnsafeRawBufferPointer) -> Void) {
        var replacement = UTF8Text.decode(held[index])
        held[index] = []
        replacement.withUTF8 { emit(UnsafeRawBufferPointer($0)) }
    }

    /// The length of the sequence a lead byte starts (1 for a byte that starts none).
    private static func sequenceLength(_ lead: UInt8) -> Int {
        lead & 0xE0 == 0xC0 ? 2 : lead & 0xF0 == 0xE0 ? 3 : lead & 0xF8 == 0xF0 ? 4 : 1
    }
}
