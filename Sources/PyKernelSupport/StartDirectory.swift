import Glibc

/// The working directory the process started in, whose path may not be UTF-8 (a directory named
/// with Latin-1 bytes, `dir\xff`). Swift's text of it (`FileManager.currentDirectoryPath`,
/// `String(cString:)` of `getcwd`) has U+FFFD for each such byte and names no directory, so
/// the engine, the process API and `pykernel run` hand the system ``fileSystemPath(_:)`` of a
/// path where they had its text: that text (the default working directory of every context, of
/// the processes started, of the workers), or a path under it (a relative `cwd` resolved against
/// it), means the start directory's own bytes.
package enum StartDirectory {
    /// The bytes of the process's working directory, read once, at the first use (main.swift
    /// uses it before anything changes directory); `nil` when `getcwd` fails (it was removed).
    package static let bytes: [UInt8]? = {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(PATH_MAX) + 1) { buffer in
            getcwd(buffer.baseAddress, buffer.count).map { Array(UnsafeRawBufferPointer(start: $0, count: strlen($0))) }
        }
    }()

    /// The start directory's text when its bytes are not UTF-8 (`nil` when they are, or unknown):
    /// what Swift calls it.
    private static let lossyText: String? = bytes.flatMap { bytes in
        String(validating: bytes, as: UTF8.self) == nil ? String(decoding: bytes, as: UTF8.self) : nil
    }

    /// The bytes that name the directory or file `path` names: the start directory's own in
    /// place of its text when `path` is that text or a path under it, else the UTF-8 of `path`
    /// (what the system would have been given).
    package static func bytes(of path: String) -> [UInt8] {
        if let lossyText, let start = bytes, path.utf8.starts(with: lossyText.utf8) {
            let rest = path.utf8.dropFirst(lossyText.utf8.count)
            if rest.isEmpty || rest.first == UInt8(ascii: "/") { return start + rest }
        }
        return Array(path.utf8)
    }

    /// ``bytes(of:)`` NUL-terminated, for the C calls.
    package static func fileSystemPath(_ path: String) -> [CChar] {
        bytes(of: path).map { CChar(bitPattern: $0) } + [0]
    }
}
