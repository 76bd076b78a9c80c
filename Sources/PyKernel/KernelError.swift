/// A failure of the engine or of a request: an unknown context, a bad working directory, a stopped
/// engine. A failure of the user's code is never thrown; it is an ``ExecutionResult`` with an
/// ``ErrorRecord``.
public struct KernelError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable identifier of the kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Storage: String, Sendable {
            case contextNotFound, defaultContextUndeletable, invalidWorkingDirectory, invalidArgument
            case interpreterBusy, contextDeleted, shutDown, initializationFailed
        }
        private let storage: Storage
        private init(_ storage: Storage) { self.storage = storage }

        /// No context has the given ID (never created, or deleted).
        public static let contextNotFound = Code(.contextNotFound)
        /// The `default` context always exists and cannot be deleted.
        public static let defaultContextUndeletable = Code(.defaultContextUndeletable)
        /// A working directory does not exist or is not a directory.
        public static let invalidWorkingDirectory = Code(.invalidWorkingDirectory)
        /// An argument is malformed (an environment variable name with `=`, a negative timeout, ...).
        public static let invalidArgument = Code(.invalidArgument)
        /// The interpreter is still occupied by a run that was already reported as timed out
        /// (native code that does not check for signals); it recovers by itself when that code returns.
        public static let interpreterBusy = Code(.interpreterBusy)
        /// The run's context was deleted before the run could start.
        public static let contextDeleted = Code(.contextDeleted)
        /// The manager has been shut down.
        public static let shutDown = Code(.shutDown)
        /// The embedded interpreter could not be started.
        public static let initializationFailed = Code(.initializationFailed)

        public var description: String { storage.rawValue }
    }

    /// What kind of failure this is.
    public let code: Code
    /// A sentence a person can act on.
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
