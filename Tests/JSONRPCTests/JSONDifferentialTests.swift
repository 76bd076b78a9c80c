import Foundation
import JSONRPC
import Testing

/// The own parser and serializer against Foundation's `JSONSerialization` on generated documents
/// (deterministic seeds): valid documents must read the same in both, and mutated ones must be
/// accepted by both or neither (with the same value), except for JSONSerialization's own bugs
/// named in ``CanonicalJSON`` and ``DifferentialFuzz/compare(_:)``. `scripts/fuzz-json` runs more documents.
@Suite struct JSONDifferentialTests {
    /// Documents per run: `PYKERNEL_FUZZ_DOCUMENTS` (the fuzz script), else a few seconds' worth.
    static let documents = ProcessInfo.processInfo.environment["PYKERNEL_FUZZ_DOCUMENTS"].flatMap { Int($0) } ?? 20_000
    static let seed = ProcessInfo.processInfo.environment["PYKERNEL_FUZZ_SEED"].flatMap { UInt64($0) } ?? 10

    @Test func generatedDocumentsReadTheSameInBothParsers() {
        var fuzz = DifferentialFuzz(seed: Self.seed)
        for index in 0..<Self.documents / 2 {
            if let problem = fuzz.checkGenerated() {
                Issue.record("document \(index) (seed \(Self.seed)): \(problem)")
                return
            }
        }
    }

    @Test func mutatedDocumentsAreAcceptedOrRejectedAlike() {
        var fuzz = DifferentialFuzz(seed: Self.seed &+ 1)
        for index in 0..<Self.documents / 2 {
            if let problem = fuzz.checkMutated() {
                Issue.record("document \(index) (seed \(Self.seed &+ 1)): \(problem)")
                return
            }
        }
    }
}

/// A JSON value in a form both parsers' results convert to (numbers as `Double`, objects unordered).
///
/// Numbers are equal
/// within a relative 1e-13: JSONSerialization reads some numbers a few ulps off
/// (`1.7976931348623157` as `1.7976931348623153`, `1.890000000900000000000002e-97` as
/// `1.8900000009000015e-97`, where Swift's `Double(String)` and Python's `float` agree on the
/// text's value); a misread number (digits lost or added) is far beyond that. The own parser's exact
/// reading is checked by its own round trip.
enum CanonicalJSON: Equatable {
    case null, bool(Bool), number(Double), string(String), array([CanonicalJSON]), object([String: CanonicalJSON])

    init(_ value: JSONValue) {
        switch value {
        case .null: self = .null
        case .bool(let bool): self = .bool(bool)
        case .integer(let integer): self = .number(Double(integer))
        case .double(let double): self = .number(double)
        case .string(let string): self = .string(string)
        case .array(let elements): self = .array(elements.map(CanonicalJSON.init))
        case .object(let object):
            var members: [String: CanonicalJSON] = [:]
            for index in object.keys.indices { members[object.keys[index]] = CanonicalJSON(object.values[index]) }
            self = .object(members)
        case .fragment(let fragment): self.init(fragment.value)
        }
    }

    static func == (lhs: CanonicalJSON, rhs: CanonicalJSON) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let left), .bool(let right)): left == right
        case (.number(let left), .number(let right)):
            left == right || (left.sign == right.sign && abs(left - right) <= 1e-13 * max(abs(left), abs(right)))
        case (.string(let left), .string(let right)): left == right
        case (.array(let left), .array(let right)): left == right
        case (.object(let left), .object(let right)): left == right
        default: false
        }
    }

    /// Where `self` and `other` first differ, as a path and the two values; `nil` when equal.
    func firstDifference(from other: CanonicalJSON, at path: String = "$") -> String? {
        switch (self, other) {
        case (.array(let left), .array(let right)) where left.count == right.count:
            for index in left.indices {
                if let difference = left[index].firstDifference(from: right[index], at: "\(path)[\(index)]") { return difference }
            }
            return nil
        case (.object(let left), .object(let right)) where Set(left.keys) == Set(right.keys):
            for key in left.keys.sorted() {
                if let difference = left[key]!.firstDifference(from: right[key]!, at: "\(path)[\(key.debugDescription)]") { return difference }
            }
            return nil
        case (.object(let left), .object(let right)):
            let onlyLeft = Set(left.keys).subtracting(right.keys).map(\.debugDescription).sorted()
            let onlyRight = Set(right.keys).subtracting(left.keys).map(\.debugDescription).sorted()
            return "at \(path): keys only in the first \(onlyLeft), only in the second \(onlyRight)"
        default:
            return self == other ? nil : "at \(path): \(self) vs \(other)"
        }
    }

    /// What `JSONSerialization` returned; `nil` for a type it should never return.
    init?(foundation value: Any) {
        switch value {
        case is NSNull: self = .null
        case let string as String: self = .string(string)
        case let number as NSNumber:
            // Booleans come back as NSNumber too; their type encoding is a C char.
            if String(cString: number.objCType) == "c" { self = .bool(number.boolValue) } else { self = .number(number.doubleValue) }
        case let array as [Any]:
            var elements: [CanonicalJSON] = []
            for element in array {
                guard let converted = CanonicalJSON(foundation: element) else { return nil }
                elements.append(converted)
            }
            self = .array(elements)
        case let dictionary as [String: Any]:
            var members: [String: CanonicalJSON] = [:]
            for (key, element) in dictionary {
                guard let converted = CanonicalJSON(foundation: element) else { return nil }
                members[key] = converted
            }
            self = .object(members)
        default: return nil
        }
    }
}

/// Deterministic document generator and checks (SplitMix64, so a seed gives the same run everywhere).
struct DifferentialFuzz {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    private mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }

    /// Characters that stress escaping and UTF-8: controls, quotes, backslashes, line separators,
    /// two- to four-byte sequences, combining marks, U+FFFD. Not U+FEFF: JSONSerialization on Linux
    /// drops a raw U+FEFF at the start of a string and after an escape (`["\u{FEFF}a"]` reads as
    /// `["a"]`, a Foundation bug), which leaves nothing to compare (JSONFuzzRegressionTests pins
    /// the own parser's reading).
    private static let alphabet: [Unicode.Scalar] = Array("azAZ09 _-/.:,[]{}\"\\".unicodeScalars)
        + (0..<0x20).map { Unicode.Scalar($0)! }
        + ["\u{7F}", "\u{80}", "\u{E9}", "\u{7FF}", "\u{800}", "\u{2028}", "\u{2029}", "\u{301}",
           "\u{FFFD}", "\u{FFFF}", "\u{10000}", "\u{1F600}", "\u{10FFFF}", "\u{4E2D}"]

    mutating func string() -> String {
        var scalars = String.UnicodeScalarView()
        for _ in 0..<below(below(4) == 0 ? 200 : 12) { scalars.append(Self.alphabet[below(Self.alphabet.count)]) }
        return String(scalars)
    }

    mutating func number() -> JSONValue {
        switch below(8) {
        case 0: return .integer(Int64(bitPattern: next()))
        case 1: return .integer(Int64(below(2001)) - 1000)
        case 2: return [.integer(.max), .integer(.min), .integer(0), .double(-0.0), .double(.ulpOfOne),
                        .double(.leastNonzeroMagnitude), .double(.greatestFiniteMagnitude), .double(9_007_199_254_740_992)][below(8)]
        case 3, 4:
            let bits = Double(bitPattern: next())
            return .double(bits.isFinite ? bits : 1.5)
        case 5: return .double(Double(below(2_000_001) - 1_000_000) / 1000)
        default: return .double(Double(below(1000)) * pow(10, Double(below(600) - 300)))
        }
    }

    mutating func value(depth: Int = 0) -> JSONValue {
        switch below(depth > 5 ? 5 : 7) {
        case 0: return .null
        case 1: return .bool(below(2) == 0)
        case 2, 3: return number()
        case 4: return .string(string())
        case 5: return .array((0..<below(6)).map { _ in value(depth: depth + 1) })
        default:
            var object = JSONObject()
            for _ in 0..<below(6) { object[string()] = value(depth: depth + 1) }
            return .object(object)
        }
    }

    /// A generated value written by each side and read by both; `nil` when all agree.
    mutating func checkGenerated() -> String? {
        let value = value()
        let text = value.serialized()
        let ownRead: JSONValue
        do { ownRead = try JSONValue.parse(text) } catch { return "own parser rejects own output \(Self.show(text)): \(error)" }
        guard ownRead == value else { return "own round trip changed \(Self.show(text))" }
        let foundationRead: Any
        do { foundationRead = try JSONSerialization.jsonObject(with: Data(text), options: [.fragmentsAllowed]) } catch {
            return "JSONSerialization rejects own output \(Self.show(text)): \(error)"
        }
        if let difference = CanonicalJSON(foundation: foundationRead).map({ CanonicalJSON(value).firstDifference(from: $0) }) ?? "unknown types" {
            return "JSONSerialization reads own output differently, \(difference): \(Self.show(text))"
        }
        guard let foundationText = try? JSONSerialization.data(withJSONObject: foundationRead, options: [.fragmentsAllowed]) else {
            return nil  // Foundation cannot write some values it reads (not the own code's concern).
        }
        guard let reread = try? JSONValue.parse(Array(foundationText)) else {
            return "own parser rejects JSONSerialization's output \(Self.show(Array(foundationText)))"
        }
        if let difference = CanonicalJSON(value).firstDifference(from: CanonicalJSON(reread)) {
            return "own parser reads JSONSerialization's output differently, \(difference): \(Self.show(Array(foundationText)))"
        }
        return nil
    }

    /// A valid document with a few random edits, read by both parsers; `nil` when they agree.
    mutating func checkMutated() -> String? {
        var bytes = value().serialized()
        for _ in 0...below(3) { mutate(&bytes) }
        return Self.compare(bytes)
    }

    /// Reads `bytes` with both parsers; `nil` when they agree (or differ only as documented).
    static func compare(_ bytes: [UInt8]) -> String? {
        let own = try? JSONValue.parse(bytes)
        let foundation = try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        switch (own, foundation) {
        case (nil, nil): return nil
        case (let own?, let foundation?):
            guard let difference = CanonicalJSON(foundation: foundation).map({ CanonicalJSON(own).firstDifference(from: $0) }) ?? "unknown types" else { return nil }
            // A mutation can make a U+FEFF (a bit flip in U+FFFF's bytes), which JSONSerialization
            // drops in places (see `alphabet`).
            if bytes.indices.dropLast(2).contains(where: { bytes[$0] == 0xEF && bytes[$0 + 1] == 0xBB && bytes[$0 + 2] == 0xBF }) { return nil }
            return "the parsers read different values (own vs JSONSerialization \(difference)) from \(show(bytes))"
        case (let own?, nil):
            // A number past `Double`'s range is JSON (RFC 8259 sets no range); the own parser reads
            // it as an infinity, JSONSerialization may refuse it.
            if holdsInfinity(own) { return nil }
            return "only the own parser accepts \(show(bytes))"
        case (nil, _?):
            // JSONSerialization stops reading at a NUL byte (`9\u{0}0` reads as 9); a raw NUL is
            // never valid JSON, and the own parser rejects it.
            if bytes.contains(0) { return nil }
            // JSONSerialization accepts a trailing comma (`[1,]`); RFC 8259 and the own parser do not.
            if case .failure(let error) = Result(catching: { () throws(JSONParseError) in try JSONValue.parse(bytes) }),
               error.reason.hasPrefix("trailing comma") {
                return nil
            }
            return "only JSONSerialization accepts \(show(bytes))"
        }
    }

    private mutating func mutate(_ bytes: inout [UInt8]) {
        let interesting: [UInt8] = Array("\"\\{}[],:-+.eE0 \t\n\r/utfn".utf8) + [0x00, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xE2, 0xED, 0xF0, 0xF4, 0xFF]
        let position = bytes.isEmpty ? 0 : below(bytes.count)
        switch below(6) {
        case 0 where !bytes.isEmpty: bytes[position] = interesting[below(interesting.count)]
        case 1: bytes.insert(interesting[below(interesting.count)], at: position)
        case 2 where !bytes.isEmpty: bytes.remove(at: position)
        case 3: bytes.removeLast(below(bytes.count + 1) / 4)
        case 4 where !bytes.isEmpty:
            let end = min(bytes.count, position + 1 + below(8))
            bytes.insert(contentsOf: bytes[position..<end], at: below(bytes.count))
        default:
            if bytes.isEmpty { bytes.append(0x20) } else { bytes[position] ^= UInt8(1 << below(8)) }
        }
    }

    private static func holdsInfinity(_ value: JSONValue) -> Bool {
        switch value {
        case .double(let number): number.isInfinite
        case .array(let elements): elements.contains(where: holdsInfinity)
        case .object(let object): object.values.contains(where: holdsInfinity)
        default: false
        }
    }

    private static func show(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(300), as: UTF8.self).debugDescription
        return bytes.count > 300 ? text + "… (\(bytes.count) bytes)" : text
    }
}
