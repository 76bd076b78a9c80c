import Foundation
import Synchronization

/// Identifies a context: `default`, or a UUID string for contexts created later.
public struct ContextID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }

    /// The context that always exists, where code runs when no context is named.
    public static let `default` = ContextID("default")

    static func random() -> ContextID { ContextID(UUID().uuidString.lowercased()) }

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
