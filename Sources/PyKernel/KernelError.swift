import PyKernelSupport

/// A failure of the engine or of a request: an unknown context, a bad working directory, a stopped
/// engine. A failure of the user's code is never thrown; it is an ``ExecutionResult`` with an
/// ``ErrorRecord``.
public struct KernelError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A stable identifier of the kind of failure.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Storage: String, Sendable {
            case contextNotFound = "context_not_found"
            case defaultContextUndeletable = "default_context_undeletable"
            case invalidWorkingDirectory = "invalid_cwd"
            case invalidArgument = "invalid_argument"
            case interpreterBusy = "interpreter_busy"
            case contextDeleted = "context_deleted"
            case runQueueFull = "run_queue_full"
            case shutDown = "shutting_down"
            case initializationFailed = "initialization_failed"
            case notWaitingForInput = "not_waiting_for_input"
            case contextDead = "context_dead"
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
        /// Too many runs are queued; the run was not queued (retry when some have finished).
        public static let runQueueFull = Code(.runQueueFull)
        /// The manager has been shut down.
        public static let shutDown = Code(.shutDown)
        /// The embedded interpreter could not be started.
        public static let initializationFailed = Code(.initializationFailed)
        /// An answer to a request for input that is not open (answered already, or its run was
        /// stopped or has ended).
        public static let notWaitingForInput = Code(.notWaitingForInput)
        /// A process context's worker has ended (it crashed, or a run that did not stop was killed
        /// with it): restart or delete the context.
        public static let contextDead = Code(.contextDead)

        /// The stable snake_case spelling, as the protocol's `data.reason` carries it.
        public var description: String { storage.rawValue }
    }

    /// What kind of failure this is.
    public let code: Code
    /// A sentence a person can act on.
    public let message: String

    /// The request argument at fault, by its wire name (`cwd`, `env`, `timeout`), when there is one.
    public let field: String?

    /// An error of `code`, described by `message`, about the request argument `field`.
    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    /// The engine's form of a refused argument.
    init(_ invalid: InvalidInput) {
        let code: Code = switch invalid.reason {
        case .invalidCwd: .invalidWorkingDirectory
        case .invalidArgument: .invalidArgument
        }
        self.init(code, invalid.message, field: invalid.field)
    }

    public var description: String { "\(code): \(message)" }
}

/// The errors several modules raise, in the wording of ``ErrorMessages``.
extension KernelError {
    /// ``Code/contextNotFound``: no context has the ID `id`.
    package static func contextNotFound(_ id: ContextID) -> KernelError {
        KernelError(.contextNotFound, ErrorMessages.contextNotFound(id.rawValue))
    }

    /// ``Code/defaultContextUndeletable``.
    package static let defaultContextUndeletable = KernelError(.defaultContextUndeletable, ErrorMessages.defaultContextUndeletable)

    /// ``Code/shutDown`` of a run that was not started: queued when the shutdown began, or
    /// submitted after it.
    package static let runNotStarted = KernelError(.shutDown, ErrorMessages.runNotStarted)

    /// ``Code/shutDown`` of a context's creation, interruption or deletion after the shutdown.
    package static let contextsShutDown = KernelError(.shutDown, ErrorMessages.contextsShutDown)
}
