import Foundation
import PyKernelSupport
import Synchronization

/// Identifies a context: `default`, or a UUID string for contexts created later.
public struct ContextID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The ID as text (a UUID for created contexts, `default`, or the ID the caller chose).
    public let rawValue: String
    /// The context with this ID (whether one exists is checked where it is used).
    public init(rawValue: String) { self.rawValue = rawValue }
    /// The context with this ID (whether one exists is checked where it is used).
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The context that always exists, where code runs when no context is named.
    public static let `default` = ContextID("default")

    /// A new random ID (see `randomIdentifier()`: a version 4 UUID from `getrandom`, never
    /// repeated for want of file descriptors).
    static func random() -> ContextID {
        ContextID(randomIdentifier())
    }

    public var description: String { rawValue }
}

/// A context as listed: its ID, language and current working directory.
public struct ContextInfo: Sendable, Hashable {
    /// The context's ID.
    public let id: ContextID
    /// Always `python`.
    public let language: String
    /// The working directory the context's code runs in (updated when its code calls `os.chdir`).
    public let cwd: String
}

/// A context's working directory: its path's bytes, which need not be UTF-8 (a directory named in
/// Latin-1 the code entered, or the one the process started in), and their text, which the wire
/// shows (U+FFFD for a byte that is not UTF-8). Two are the same directory when their bytes are.
struct ContextDirectory: Equatable, Sendable {
    let text: String
    let bytes: [UInt8]

    /// The directory a path given as text names (the start directory's text means its bytes:
    /// ``StartDirectory/bytes(of:)``).
    init(_ path: String) {
        text = path
        bytes = StartDirectory.bytes(of: path)
    }

    /// The directory a path's bytes name (`getcwd`'s).
    init(bytes: [UInt8]) {
        text = String(decoding: bytes, as: UTF8.self)
        self.bytes = bytes
    }

    static func == (lhs: ContextDirectory, rhs: ContextDirectory) -> Bool { lhs.bytes == rhs.bytes }

    /// Makes it the calling thread's working directory; `false` (with `errno`) when it cannot be.
    func enter() -> Bool {
        chdir(bytes.map { CChar(bitPattern: $0) } + [0]) == 0
    }
}

/// The engine's record of one context, shared between the manager and the interpreter thread.
/// Its Python namespace lives on the interpreter thread only (see ``InterpreterState``).
final class ContextRecord: Sendable {
    struct State {
        var cwd: ContextDirectory
        /// Whether `cwd` is a directory the context's own code removed while the process was in
        /// it (``ContextSettings/currentDirectory()``): its runs are refused until one is made
        /// again under that name, never run in the directory the context had before.
        var cwdRemovedByCode = false
        /// The umask its code runs with (`os.umask` changes it for this context only).
        var umask: mode_t
        var executionCount = 0
        var deleted = false
    }

    let id: ContextID
    let state: Mutex<State>
    /// Where the context is listed: `default` first (0, 0), then by ID. A UUID's 128 bits
    /// compare as its lowercase text does (same length, dashes at the same places, and `0-9`
    /// before `a-f`), so sorting 10,000 contexts compares integers, not strings.
    let listOrder: (UInt64, UInt64)

    init(id: ContextID, cwd: String, umask: mode_t) {
        self.id = id
        self.state = Mutex(State(cwd: ContextDirectory(cwd), umask: umask))
        self.listOrder = id == .default ? (0, 0) : Self.bits(ofUUID: id.rawValue) ?? (.max, .max)
    }

    /// Whether `lhs` is listed before `rhs` (see ``listOrder``; IDs that are not lowercase UUIDs
    /// come last, by their text).
    static func listedBefore(_ lhs: ContextRecord, _ rhs: ContextRecord) -> Bool {
        if lhs.listOrder != rhs.listOrder { return lhs.listOrder < rhs.listOrder }
        return lhs.listOrder == (.max, .max) && lhs.id.rawValue < rhs.id.rawValue
    }

    /// The 128 bits of a lowercase UUID (`8-4-4-4-12` hex digits), or `nil` for any other text.
    private static func bits(ofUUID text: String) -> (UInt64, UInt64)? {
        var utf8 = text.utf8.makeIterator()
        var words: (UInt64, UInt64) = (0, 0)
        for position in 0..<36 {
            guard let byte = utf8.next() else { return nil }
            if position == 8 || position == 13 || position == 18 || position == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            if position < 19 {
                words.0 = words.0 << 4 | UInt64(digit)
            } else {
                words.1 = words.1 << 4 | UInt64(digit)
            }
        }
        return utf8.next() == nil ? words : nil
    }

    var info: ContextInfo {
        ContextInfo(id: id, language: "python", cwd: state.withLock { $0.cwd.text })
    }
}
