import MCP

/// The tools `pykernel mcp` offers, with their JSON Schemas (documented in docs/mcp.md).
enum ToolCatalog {
    static let runPython = "run_python"
    static let createContext = "create_context"
    static let listContexts = "list_contexts"
    static let deleteContext = "delete_context"
    static let restartContext = "restart_context"
    static let interrupt = "interrupt"
    static let runCommand = "run_command"

    static let tools: [Tool] = [
        Tool(
            name: runPython,
            description: """
                Run Python code in a stateful context (variables, imports and the working directory persist \
                between calls of the same context). Returns what the code printed (stdout, then stderr), and the \
                traceback when it raised. Context 'default' is used when none is given.
                """,
            inputSchema: schema(required: ["code"], [
                "code": ["type": "string", "description": "The Python source to run."],
                "context": ["type": "string", "description": "A context id from create_context; default: 'default'."],
                "timeout": ["type": "number", "minimum": 0, "description": "Seconds before the run is stopped (0: never; default 600)."],
                "env": ["type": "object", "additionalProperties": ["type": "string"],
                        "description": "Environment variables set in os.environ during this run only."],
            ]),
            annotations: .init(title: "Run Python", destructiveHint: true, openWorldHint: true)),
        Tool(
            name: createContext,
            description: """
                Create a new Python context (its own globals and working directory). Returns its id. \
                isolation 'process' puts it in a worker process of its own: a crash or a run that ignores stops \
                ends only that context.
                """,
            inputSchema: schema(required: [], [
                "cwd": ["type": "string", "description": "Working directory of the context (must exist)."],
                "isolation": ["type": "string", "enum": ["namespace", "process"],
                              "description": "namespace (in the server's interpreter) or process (a worker process of its own); default: the server's --isolation."],
            ]),
            annotations: .init(title: "Create context", destructiveHint: false)),
        Tool(
            name: listContexts,
            description: "List the Python contexts: id, working directory and isolation of each ('dead' for a process context whose worker ended).",
            inputSchema: schema(required: [], [:]),
            annotations: .init(title: "List contexts", readOnlyHint: true)),
        Tool(
            name: deleteContext,
            description: "Delete a Python context and free its variables (a run in progress in it is interrupted).",
            inputSchema: schema(required: ["id"], [
                "id": ["type": "string", "description": "The context id."],
            ]),
            annotations: .init(title: "Delete context", destructiveHint: true, idempotentHint: true)),
        Tool(
            name: restartContext,
            description: """
                Give a process context a fresh worker process (same id and working directory, empty globals): \
                the way back from a context that is dead after a crash.
                """,
            inputSchema: schema(required: ["id"], [
                "id": ["type": "string", "description": "The id of a process context."],
            ]),
            annotations: .init(title: "Restart context", destructiveHint: true)),
        Tool(
            name: interrupt,
            description: "Interrupt the run in progress in a context (KeyboardInterrupt); the context keeps its state.",
            inputSchema: schema(required: ["context"], [
                "context": ["type": "string", "description": "The context id."],
            ]),
            annotations: .init(title: "Interrupt", destructiveHint: false)),
        Tool(
            name: runCommand,
            description: "Run a shell command (/bin/sh -c) and return its exit code, stdout and stderr.",
            inputSchema: schema(required: ["command"], [
                "command": ["type": "string", "description": "The command line."],
                "cwd": ["type": "string", "description": "Working directory (must exist)."],
                "env": ["type": "object", "additionalProperties": ["type": "string"],
                        "description": "Environment variables laid over the server's."],
                "timeout": ["type": "number", "minimum": 0, "description": "Seconds before the command's process group is killed (0: never)."],
            ]),
            annotations: .init(title: "Run command", destructiveHint: true, openWorldHint: true)),
    ]

    /// The argument names a tool accepts (empty for an unknown tool).
    static func argumentNames(of tool: String) -> Set<String> {
        guard let found = tools.first(where: { $0.name == tool }),
              case .object(let properties)? = found.inputSchema.objectValue?["properties"] else { return [] }
        return Set(properties.keys)
    }

    private static func schema(required: [String], _ properties: [String: Value]) -> Value {
        .object([
            "type": "object",
            "properties": .object(properties),
            "required": .array(required.map { .string($0) }),
            "additionalProperties": false,
        ])
    }
}
