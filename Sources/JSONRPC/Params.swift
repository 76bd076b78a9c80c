/// Typed access to a request's `params` object with uniform -32602 "Invalid params" errors.
///
/// Every error names the field in its message (for example "params.code is required and must be
/// a string", "params.timeout must be a number, got string") and carries
/// `{"reason": "invalid_argument", "field": name}` as data (`field` is `"params"` when the params
/// themselves are not an object). Absent or `null` params behave as an empty object; a field set to `null` counts as
/// absent.
public struct Params: Sendable {
    /// The params object.
    public let object: JSONObject

    /// Accepts an object, `null` or no params; params given as an array are rejected.
    public init(_ params: JSONValue?) throws(RPCError) {
        switch params {
        case nil, .null?: object = [:]
        case .object(let object)?: self.object = object
        case let other?: throw RPCError.invalidParams("params must be an object, got \(other.typeName)", field: "params")
        }
    }

    /// A required string.
    public func string(_ key: String) throws(RPCError) -> String {
        guard let value = try optionalString(key) else { throw Self.error(key, "is required and must be a string") }
        return value
    }

    /// A string, or `nil` when absent.
    public func optionalString(_ key: String) throws(RPCError) -> String? {
        try optional(key, "a string") { $0.stringValue }
    }

    /// A number (integer or not) as a `Double`, or `nil` when absent.
    public func optionalDouble(_ key: String) throws(RPCError) -> Double? {
        try optional(key, "a number") { $0.doubleValue }
    }

    /// An integer in `range` (all of `Int`'s when not given), or `nil` when absent. A number with a
    /// zero fraction, like `5.0`, is accepted.
    ///
    /// A whole number outside `range` (past `Int`'s too, or past `Double`'s: an infinity) is
    /// refused with a message that names `range`, such as "params.max_output_bytes must be an
    /// integer from 0 to 9223372036854775807, got -1"; anything else that is no integer with
    /// "params.limit must be an integer, got 1.5".
    public func optionalInt(_ key: String, in range: ClosedRange<Int> = Int.min...Int.max) throws(RPCError) -> Int? {
        guard let value = object[key], !value.isNull else { return nil }
        if let int = value.intValue ?? value.doubleValue.flatMap(Int.init(exactly:)), range.contains(int) { return int }
        guard let number = value.doubleValue else { throw Self.error(key, "must be an integer, got \(value.typeName)") }
        guard number.rounded() == number else { throw Self.error(key, "must be an integer, got \(number)") }
        let got = value.intValue.map { "\($0)" } ?? (number.isFinite ? "\(number)" : "a number past ±1.8e308")
        throw Self.error(key, "must be an integer from \(range.lowerBound) to \(range.upperBound), got \(got)")
    }

    /// A Boolean, or `nil` when absent.
    public func optionalBool(_ key: String) throws(RPCError) -> Bool? {
        try optional(key, "a boolean") { $0.boolValue }
    }

    /// An object whose values are all strings (such as environment variables), or `nil` when absent.
    public func optionalStringDictionary(_ key: String) throws(RPCError) -> [String: String]? {
        guard let object = try optional(key, "an object of strings", { $0.objectValue }) else { return nil }
        var dictionary: [String: String] = [:]
        for (name, value) in object {
            guard let string = value.stringValue else {
                throw Self.error(key, "must be an object of strings, but params.\(key).\(name) is \(value.typeName)")
            }
            dictionary[name] = string
        }
        return dictionary
    }

    /// An array of strings, or `nil` when absent.
    public func optionalStringArray(_ key: String) throws(RPCError) -> [String]? {
        guard let array = try optional(key, "an array of strings", { $0.arrayValue }) else { return nil }
        var strings: [String] = []
        strings.reserveCapacity(array.count)
        for (position, element) in array.enumerated() {
            guard let string = element.stringValue else {
                throw Self.error(key, "must be an array of strings, but params.\(key)[\(position)] is \(element.typeName)")
            }
            strings.append(string)
        }
        return strings
    }

    private func optional<T>(
        _ key: String, _ expected: String, _ extract: (JSONValue) -> T?
    ) throws(RPCError) -> T? {
        guard let value = object[key], !value.isNull else { return nil }
        guard let result = extract(value) else { throw Self.error(key, "must be \(expected), got \(value.typeName)") }
        return result
    }

    private static func error(_ key: String, _ problem: String) -> RPCError {
        .invalidParams("params.\(key) \(problem)", field: key)
    }
}
