import PyKernelSupport

/// The one output rule (`HeadTailBuffer`) applied to a log file without reading its middle:
/// of a file longer than `limit` bytes, the first `limit / 2` and the last `limit - limit / 2`
/// bytes, both cut at character boundaries, and the count of bytes between them. (Kept custom
/// because `HeadTailBuffer` is fed a stream; a log of 64 MiB should not be read whole to cap it.)
enum CappedFile {
    /// The capped text of the file at `path` (empty if it does not exist).
    static func read(_ path: String, limit: Int) -> (text: String, omittedBytes: Int) {
        let size = Posix.fileSize(path) ?? 0
        let limit = max(0, limit)
        guard size > limit else {
            return (UTF8Text.decode(Posix.readFile(path, offset: 0, count: size) ?? []), 0)
        }
        let head = Posix.readFile(path, offset: 0, count: limit / 2) ?? []
        let tailCount = limit - limit / 2
        let tail = Posix.readFile(path, offset: size - tailCount, count: tailCount) ?? []
        let keptHead = head.prefix(UTF8Text.completePrefixLength(head))
        let keptTail = tail.dropFirst(UTF8Text.leadingContinuationCount(tail))
        return (UTF8Text.decode(keptHead + keptTail), size - keptHead.count - keptTail.count)
    }
}
