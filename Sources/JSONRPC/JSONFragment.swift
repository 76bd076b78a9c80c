/// One JSON value's compact text, serialized once and written as is wherever it is spliced
/// (see ``JSONValue/fragment(_:)``): a value sent in two messages (a run's result, in its
/// notification and in the response) is encoded once, and a message can be written without
/// building a tree of ``JSONValue``s and ``JSONObject``s first.
///
/// Only this module makes fragments (from a value, or member by member with
/// ``object(capacity:_:)``), so the text is always exactly what ``JSONValue/serialized()`` writes
/// for the value it denotes, but for a number kept as written (``isNumber``: a request's id, a
/// number parsed with `numbersAsWritten`), whose text is the one it was read from.
public struct JSONFragment: Sendable, Hashable {
    /// The compact JSON text, as UTF-8.
    public let bytes: [UInt8]

    /// Whether the text is a number (kept as written: an integer past 64 bits keeps every digit).
    public var isNumber: Bool {
        guard let first = bytes.first else { return false }
        return first == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first)
    }

    /// The text of `value`, serialized now.
    public init(_ value: JSONValue) {
        bytes = value.serialized()
    }

    /// A fragment of `bytes`, which must be one compact JSON text.
    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// An object whose members `build` writes in order (each key once), starting with room for
    /// `capacity` bytes.
    public static func object(capacity: Int = 128, _ build: (inout JSONObjectWriter) -> Void) -> JSONFragment {
        var writer = JSONObjectWriter(output: [])
        writer.output.reserveCapacity(capacity)
        writer.output.append(UInt8(ascii: "{"))
        build(&writer)
        writer.output.append(UInt8(ascii: "}"))
        return JSONFragment(bytes: writer.output)
    }

    /// The value the text denotes (parsed again: for reading a fragment, not on a message's path).
    public var value: JSONValue {
        // The text was serialized from a value (or is a number kept as written, a request id's or
        // a parse's `numbersAsWritten`: past `Double`'s range an infinity), so it parses, at any
        // depth it had.
        (try? JSONValue.parse(bytes, maxDepth: .max)) ?? .null
    }
}

/// Writes the members of an object being built as a ``JSONFragment`` (see
/// ``JSONFragment/object(capacity:_:)``), in the order written. Give each key once.
public struct JSONObjectWriter {
    var output: [UInt8]
    private var isEmpty: Bool

    /// A writer of an object whose `{` (and, when `hasMembers`, some members) `output` already holds.
    init(output: [UInt8], hasMembers: Bool = false) {
        self.output = output
        isEmpty = !hasMembers
    }

    /// Writes the member `key` with `value`.
    public mutating func member(_ key: String, _ value: JSONValue) {
        writeKey(key)
        value.serialize(into: &output)
    }

    /// Writes the member `key` with `value`.
    public mutating func member(_ key: JSONKey, _ value: JSONValue) {
        writeKey(key)
        value.serialize(into: &output)
    }

    /// Writes the member `key` with the string `value` (the text of `.string(value)`, without
    /// making the ``JSONValue``).
    public mutating func member(_ key: JSONKey, string value: String) {
        writeKey(key)
        writeString(value, to: &output)
    }

    /// Writes the member `key` with the boolean `value`.
    public mutating func member(_ key: JSONKey, bool value: Bool) {
        writeKey(key)
        appendStatic(value ? "true" : "false", to: &output)
    }

    /// Writes the member `key` with the integer `value`.
    public mutating func member(_ key: JSONKey, integer value: Int64) {
        writeKey(key)
        writeInteger(value, to: &output)
    }

    /// Writes the member `key` with an object whose members `build` writes, in order.
    public mutating func member(_ key: String, object build: (inout JSONObjectWriter) -> Void) {
        writeKey(key)
        writeObject(build)
    }

    /// Writes the member `key` with an object whose members `build` writes, in order.
    public mutating func member(_ key: JSONKey, object build: (inout JSONObjectWriter) -> Void) {
        writeKey(key)
        writeObject(build)
    }

    private mutating func writeObject(_ build: (inout JSONObjectWriter) -> Void) {
        // The nested writer takes the bytes over while it writes (no copy), then gives them back.
        var nested = JSONObjectWriter(output: [])
        swap(&nested.output, &output)
        nested.output.append(UInt8(ascii: "{"))
        build(&nested)
        nested.output.append(UInt8(ascii: "}"))
        swap(&nested.output, &output)
    }

    private mutating func writeKey(_ key: String) {
        if !isEmpty { output.append(UInt8(ascii: ",")) }
        isEmpty = false
        JSONValue.string(key).serialize(into: &output)
        output.append(UInt8(ascii: ":"))
    }

    private mutating func writeKey(_ key: JSONKey) {
        if !isEmpty { output.append(UInt8(ascii: ",")) }
        isEmpty = false
        // Through its buffer: appending the array itself retains and releases it, and goes through
        // the generic sequence path.
        key.bytes.withUnsafeBufferPointer { output.append(contentsOf: $0) }
    }
}

/// An object member's key encoded once (its quoted text and the `:`), for members written often
/// with ``JSONObjectWriter`` (keep it in a `static let`).
public struct JSONKey: Sendable {
    fileprivate let bytes: [UInt8]

    /// The key `name`.
    public init(_ name: String) {
        var bytes = JSONValue.string(name).serialized()
        bytes.append(UInt8(ascii: ":"))
        self.bytes = bytes
    }
}
