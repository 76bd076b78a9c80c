import MCP
import PyKernelSupport

/// The arguments of one `tools/call`, read with clear errors: a missing, mistyped or unknown
/// argument is a ``ToolError`` of input (`invalid_argument`) naming the argument and the type it
/// must have.
struct ToolArguments {
    let tool: String
    private let values: [String: Value]

    init(tool: String, _ values: [String: Value]?) throws(ToolError) {
        self.tool = tool
        self.values = values ?? [:]
        let known = ToolCatalog.argumentNames(of: tool)
        if let unknown = self.values.keys.sorted().first(where: { !known.contains($0) }) {
            let takes = known.isEmpty ? "it takes no arguments" : "it takes \(known.sorted().joined(separator: ", "))"
            throw ToolError.invalidArgument("\(tool): unknown argument '\(unknown)' (\(takes))", field: unknown)
        }
    }

    /// The argument, `nil` when absent or JSON `null` (a model may write `null` for an optional
    /// argument it leaves at its default; ``timeout(_:default:)`` refuses it).
    private func value(_ name: String) -> Value? {
        guard let value = values[name], !value.isNull else { return nil }
        return value
    }

    func requiredString(_ name: String) throws(ToolError) -> String {
        guard let value = value(name) else { throw ToolError.invalidArgument("\(tool): argument '\(name)' is required (a string)", field: name) }
        guard let text = value.stringValue else { throw mistyped(name, "a string") }
        return text
    }

    func optionalString(_ name: String) throws(ToolError) -> String? {
        guard let value = value(name) else { return nil }
        guard let text = value.stringValue else { throw mistyped(name, "a string") }
        return text
    }

    /// A timeout in seconds, `seconds` when absent: `nil` for none (0, or past about 30 years),
    /// and a positive value too small for a `Duration` is its smallest (as `pykernel serve` reads
    /// timeouts). Unlike the other arguments a JSON `null` is refused, not taken as absent: it
    /// may mean "no timeout", and absent is the default (600 s for a run), which it silently was.
    func timeout(_ name: String, default seconds: Double) throws(ToolError) -> Duration? {
        let given: Double? = switch values[name] {
        case nil: seconds
        case .int(let number)?: Double(number)
        case .double(let number)?: number
        default: nil
        }
        guard let given else {
            let hint = values[name]?.isNull == true ? ", not null (0 for none; leave it out for the default)" : ""
            throw mistyped(name, "a number of seconds >= 0" + hint)
        }
        do throws(InvalidInput) {
            return try InputValidation.timeout(seconds: given, field: name)
        } catch {
            throw mistyped(name, "a number of seconds >= 0")
        }
    }

    func optionalStringMap(_ name: String) throws(ToolError) -> [String: String] {
        guard let value = value(name) else { return [:] }
        guard let object = value.objectValue else { throw mistyped(name, "an object of strings") }
        var map: [String: String] = [:]
        for (key, item) in object {
            guard let text = item.stringValue else { throw mistyped("\(name).\(key)", "a string", field: name) }
            map[key] = text
        }
        return map
    }

    /// - Parameter field: The argument at fault (`name` is the member of it, if not itself).
    private func mistyped(_ name: String, _ type: String, field: String? = nil) -> ToolError {
        ToolError.invalidArgument("\(tool): argument '\(name)' must be \(type)", field: field ?? name)
    }
}
