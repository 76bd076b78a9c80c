import Foundation
import Synchronization

/// Identifies a context: `default`, or a UUID string for contexts created later.
public struct ContextID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The context that always exists, where code runs when no context is named.
    public static let `default` = ContextID("default")

    /// A random (version 4) UUID in lowercase, from the system's generator (no file descriptor).
    static func random() -> ContextID {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(36)
        for (index, byte) in bytes.enumerated() {
            if [4, 6, 8, 10].contains(index) { text.append(UInt8(ascii: "-")) }
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return ContextID(String(decoding: text, as: UTF8.self))
    }

    public var description: String { rawValue }
}

/// A context as listed: its ID, language and current working directory.
public struct ContextInfo: Sendable, Hashable {
    public let id: ContextID
    /// Always `python`.
    public let language: String
    /// The working directory the context's code runs in (updated when its code calls `os.chdir`).
    public let cwd: String
}

/// The engine's record of one context, shared between the manager and the interpreter thread.
/// Its Python namespace lives on the interpreter thread only (see ``PythonSession``).
final class ContextRecord: Sendable {
    struct State {
        var cwd: String
        var executionCount = 0
        var deleted = false
    }

    let id: ContextID
    let state: Mutex<State>

    init(id: ContextID, cwd: String) {
        self.id = id
        self.state = Mutex(State(cwd: cwd))
    }

    var info: ContextInfo {
        ContextInfo(id: id, language: "python", cwd: state.withLock { $0.cwd })
    }
}
