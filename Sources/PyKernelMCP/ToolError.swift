import MCP
import PyKernel
import PyKernelProcess

/// Why a `tools/call` of a known tool could not be acted on, with a stable code: a tool execution
/// error in MCP's words (the spec's tools page, "Error Handling"), answered as a result with
/// `isError: true` that the model reads and can correct itself from, not as a JSON-RPC error
/// (which a host only may show the model; the official Python SDK raises it in the agent's code).
///
/// A refusal (an unknown or dead context, a `cwd` that is not a directory, the interpreter still
/// occupied, a full run queue: MCP's business logic errors) is such a result in every protocol
/// version; a bad argument (missing, mistyped or unknown, a bad `env` name, a negative timeout: an
/// input validation error) is one from protocol 2025-11-25 on (SEP-1303) and a JSON-RPC `-32602`
/// before it. An unknown tool, a request that breaks `CallToolRequest`'s shape and a call during
/// a shutdown (`-32005`: the server is going away) stay JSON-RPC errors.
struct ToolError: Error {
    /// What kind of error MCP takes it for.
    enum Kind {
        /// An argument the tool refuses: missing, mistyped, unknown or out of range.
        case invalidInput
        /// A valid call the engine refused in the state it is in.
        case refused
    }

    let kind: Kind
    /// The stable snake_case code (`pykernel serve`'s `data.reason`: `context_not_found`, ...).
    let code: String
    /// A sentence the model can act on.
    let message: String
    /// The argument at fault, when there is one.
    let field: String?

    /// The first protocol version whose input validation errors are tool execution errors.
    static let inputErrorsAsResultsSince = "2025-11-25"

    /// A bad argument of `tool`, `field`.
    static func invalidArgument(_ message: String, field: String) -> ToolError {
        ToolError(kind: .invalidInput, code: KernelError.Code.invalidArgument.description, message: message, field: field)
    }

    /// The engine's refusal; `nil` for a shutdown (a JSON-RPC `-32005`).
    /// - Parameter context: The context the call was about (a dead `default` is only restarted).
    init?(_ error: KernelError, about context: ContextID? = nil) {
        var message = error.message
        switch error.code {
        case .shutDown:
            return nil
        case .invalidArgument:
            kind = .invalidInput
        case .contextDead:
            kind = .refused
            message += context == .default ? " (tool: restart_context)" : " (tools: restart_context, delete_context)"
        default:
            kind = .refused
        }
        code = error.code.description
        self.message = message
        field = error.field
    }

    /// The process API's refusal of a command; `nil` for a shutdown (a JSON-RPC `-32005`).
    init?(_ error: ProcessAPIError) {
        guard error.code != .shuttingDown else { return nil }
        kind = error.code == .invalidArgument ? .invalidInput : .refused
        code = error.code.rawValue
        message = error.message
        field = error.field
    }

    private init(kind: Kind, code: String, message: String, field: String?) {
        self.kind = kind
        self.code = code
        self.message = message
        self.field = field
    }

    /// Whether it is answered as a result with `isError` (else as a JSON-RPC `-32602`) under the
    /// negotiated protocol `version`.
    func isToolResult(underProtocol version: String) -> Bool {
        kind == .refused || version >= Self.inputErrorsAsResultsSince
    }

    /// The error as a tool result: `isError`, the text `code: message`, and `structuredContent`
    /// `{"error": {"code", "message", "field"?}}`.
    var toolResult: CallTool.Result {
        var error: [String: Value] = ["code": .string(code), "message": .string(message)]
        if let field { error["field"] = .string(field) }
        return CallTool.Result(content: [.plainText("\(code): \(message)")], structured: .object(["error": .object(error)]), isError: true)
    }

    /// The error as the JSON-RPC error of protocol versions before ``inputErrorsAsResultsSince``.
    var rpcError: MCPError { .invalidParams(message) }
}
