/// A JSON value as defined by RFC 8259.
///
/// Numbers keep the distinction the text made: a number written without fraction or exponent
/// that fits in `Int64` is an ``integer(_:)``; every other number is a ``double(_:)``
/// (so `1.0` stays `.double(1.0)`).
///
/// Objects are ``JSONObject`` values, which keep their keys in insertion order. A
/// ``fragment(_:)`` is a value already serialized (``JSONFragment``), written as is.
public enum JSONValue: Sendable, Hashable {
    /// `null`
    case null
    /// `true` or `false`
    case bool(Bool)
    /// A number written without fraction or exponent that fits in `Int64`.
    case integer(Int64)
    /// Any other number. NaN and infinities serialize as `null`.
    case double(Double)
    /// A string.
    case string(String)
    /// An array.
    case array([JSONValue])
    /// An object, with its keys in order.
    case object(JSONObject)
    /// A value already serialized (see ``JSONFragment``), written as is: for building messages.
    /// The accessors read its value (parsing it); as for equality, a fragment equals only a
    /// fragment of the same text, never the tree it was written from.
    case fragment(JSONFragment)
}

// MARK: - Accessors

extension JSONValue {
    /// The string, when this is a ``string(_:)``.
    public var stringValue: String? {
        switch self {
        case .string(let value): value
        case .fragment(let fragment): fragment.value.stringValue
        default: nil
        }
    }

    /// The integer, when this is an ``integer(_:)`` that fits in `Int`. Doubles are not converted.
    public var intValue: Int? {
        switch self {
        case .integer(let value): Int(exactly: value)
        case .fragment(let fragment): fragment.value.intValue
        default: nil
        }
    }

    /// The number as a `Double`, when this is a ``double(_:)`` or an ``integer(_:)``.
    public var doubleValue: Double? {
        switch self {
        case .double(let value): value
        case .integer(let value): Double(value)
        case .fragment(let fragment): fragment.value.doubleValue
        default: nil
        }
    }

    /// The Boolean, when this is a ``bool(_:)``.
    public var boolValue: Bool? {
        switch self {
        case .bool(let value): value
        case .fragment(let fragment): fragment.value.boolValue
        default: nil
        }
    }

    /// The elements, when this is an ``array(_:)``.
    public var arrayValue: [JSONValue]? {
        switch self {
        case .array(let value): value
        case .fragment(let fragment): fragment.value.arrayValue
        default: nil
        }
    }

    /// The object, when this is an ``object(_:)``.
    public var objectValue: JSONObject? {
        switch self {
        case .object(let value): value
        case .fragment(let fragment): fragment.value.objectValue
        default: nil
        }
    }

    /// Whether this is ``null``.
    public var isNull: Bool {
        switch self {
        case .null: true
        case .fragment(let fragment): fragment.value == .null
        default: false
        }
    }

    /// The member named `key` when this is an object that has it; `nil` otherwise.
    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// The JSON type name used in messages: `null`, `boolean`, `number`, `string`, `array` or `object`.
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .integer, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        case .fragment(let fragment): fragment.value.typeName
        }
    }
}

// MARK: - Literals

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Builds an object with the members in the order written; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements))
    }
}

extension JSONValue: CustomStringConvertible {
    /// The compact JSON text of the value (see ``jsonString``).
    public var description: String { jsonString }
}

// MARK: - JSONObject

/// A JSON object that remembers the order in which its keys were first inserted.
///
/// Serialization writes members in that order. Setting an existing key replaces its value in
/// place; setting a key to `nil` removes it. Lookup is a linear scan for small objects and a
/// hash-table lookup once the object grows past a few members.
///
/// Two objects are equal when they have the same members *in the same order*, which is exactly
/// when they serialize to the same text.
public struct JSONObject: Sendable, Hashable {
    /// Objects with more members than this get a hash index.
    private static let indexThreshold = 12

    /// The keys, in insertion order.
    public private(set) var keys: [String] = []
    /// The values, in the order of ``keys``.
    public private(set) var values: [JSONValue] = []
    /// Position of each key in `keys`; empty while the object is small.
    private var index: [String: Int] = [:]

    /// An empty object.
    public init() {}

    /// An object with `pairs` in order; a repeated key keeps its last value at its first position.
    public init(_ pairs: some Sequence<(String, JSONValue)>) {
        for (key, value) in pairs { self[key] = value }
    }

    /// The number of members.
    public var count: Int { keys.count }

    /// Whether the object has no members.
    public var isEmpty: Bool { keys.isEmpty }

    /// The value of the member `key`. Assigning `nil` removes the member.
    public subscript(key: String) -> JSONValue? {
        get { position(of: key).map { values[$0] } }
        set {
            if let newValue {
                replaceOrAppend(key, newValue)
            } else if let position = position(of: key) {
                keys.remove(at: position)
                values.remove(at: position)
                index = [:]
                if keys.count > Self.indexThreshold { rebuildIndex() }
            }
        }
    }

    /// Sets the member `key` to `value`, in its place or appended; `true` when it replaced one.
    @discardableResult
    mutating func replaceOrAppend(_ key: String, _ value: JSONValue) -> Bool {
        if let position = position(of: key) {
            values[position] = value
            return true
        }
        keys.append(key)
        values.append(value)
        if !index.isEmpty {
            index[key] = keys.count - 1
        } else if keys.count > Self.indexThreshold {
            rebuildIndex()
        }
        return false
    }

    private func position(of key: String) -> Int? {
        index.isEmpty ? keys.firstIndex(of: key) : index[key]
    }

    private mutating func rebuildIndex() {
        index = Dictionary(uniqueKeysWithValues: zip(keys, keys.indices))
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.keys == rhs.keys && lhs.values == rhs.values
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(keys)
        hasher.combine(values)
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    /// Builds an object with the members in the order written; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }
}

extension JSONObject: Sequence {
    /// Iterates the members in order as `(key, value)` pairs.
    public func makeIterator() -> some IteratorProtocol<(key: String, value: JSONValue)> {
        zip(keys, values).lazy.map { (key: $0, value: $1) }.makeIterator()
    }
}
