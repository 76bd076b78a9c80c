/// Why a JSON text was rejected, and where.
public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, as a short phrase (for example "trailing comma before ']'").
    public let reason: String
    /// The byte offset in the input where the problem was found.
    public let offset: Int

    /// An error for `reason` found at byte `offset`.
    public init(reason: String, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    /// A sentence for people: the reason and the byte offset.
    public var description: String { "Invalid JSON at byte \(offset): \(reason)." }
}

extension JSONValue {
    /// The nesting depth the parser accepts by default.
    public static let defaultMaxDepth = 512

    /// Parses one JSON text strictly per RFC 8259.
    ///
    /// The input must hold exactly one value, optionally surrounded by whitespace. Rejected:
    /// trailing commas, comments, `NaN`/`Infinity`, leading zeros, invalid UTF-8, unescaped
    /// control characters, and arrays/objects nested deeper than `maxDepth` (the parser is
    /// iterative, so hostile nesting fails cleanly instead of exhausting the stack). A number
    /// beyond the range of `Double` is valid JSON (RFC 8259 sets no limit) and reads as
    /// `.double(.infinity)` or `.double(-.infinity)`, one too small as `0` (or `-0`). A `\u`
    /// escape of a lone surrogate decodes as U+FFFD. When an object repeats a key, the last value wins.
    ///
    /// Keep `maxDepth` modest: serializing, comparing and releasing a value are recursive, so
    /// values nested many thousands of levels deep are unsafe to use even once parsed.
    ///
    /// With `numbersAsWritten`, every number but an integer written without fraction or exponent
    /// that fits in `Int64` is a ``fragment(_:)`` of its text (its accessors read
    /// it as above): serializing the value writes each number exactly as the text had it, so an
    /// integer past 64 bits keeps every digit. For passing on JSON made elsewhere (a rich
    /// result's), not for requests.
    public static func parse(
        _ buffer: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth, numbersAsWritten: Bool = false
    ) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(
            bytes: buffer.assumingMemoryBound(to: UInt8.self), maxDepth: maxDepth, numbersAsWritten: numbersAsWritten)
        return try parser.parseDocument()
    }

    /// Parses one JSON text from bytes, with the rules of ``parse(_:maxDepth:numbersAsWritten:)``,
    /// and tells whether an object in it repeated a key: a reader that keeps the first value
    /// (Foundation's `JSONDecoder`) would read another value than this one, which keeps the last.
    public static func parseNotingRepeatedKeys(_ bytes: [UInt8]) throws(JSONParseError) -> (value: JSONValue, repeatsKeys: Bool) {
        let parsed = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(JSONParseError) -> (JSONValue, Bool) in
                var parser = JSONParser(bytes: buffer, maxDepth: defaultMaxDepth)
                return (try parser.parseDocument(), parser.repeatsKeys)
            }
        }
        return try parsed.get()
    }

    /// Parses one JSON text from bytes, with the rules of the `UnsafeRawBufferPointer` overload.
    public static func parse(
        _ bytes: some Collection<UInt8>, maxDepth: Int = defaultMaxDepth, numbersAsWritten: Bool = false
    ) throws(JSONParseError) -> JSONValue {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(JSONParseError) in
                try parse(UnsafeRawBufferPointer(buffer), maxDepth: maxDepth, numbersAsWritten: numbersAsWritten)
            }
        }
        if let result { return try result.get() }
        return try parse(Array(bytes), maxDepth: maxDepth, numbersAsWritten: numbersAsWritten)
    }

    /// Parses one JSON text from a string's UTF-8, with the rules of the `UnsafeRawBufferPointer` overload.
    public static func parse(
        _ text: String, maxDepth: Int = defaultMaxDepth, numbersAsWritten: Bool = false
    ) throws(JSONParseError) -> JSONValue {
        try parse(text.utf8, maxDepth: maxDepth, numbersAsWritten: numbersAsWritten)
    }
}

/// The members of a request object that ``IncomingMessage/decode(line:maxDepth:)`` reads: the
/// value of each (the last one when a key is repeated), `nil` when absent.
struct RequestEnvelope {
    var jsonrpc: JSONValue?
    var id: JSONValue?
    var method: JSONValue?
    var params: JSONValue?
}

/// One JSON text read as a request line: an object's envelope members, or any other value whole.
enum RequestLine {
    /// The text is an object: its members `jsonrpc`, `id`, `method` and `params`.
    case object(RequestEnvelope)
    /// The text is not an object.
    case other(JSONValue)
}

extension RequestLine {
    /// Parses one JSON text with the rules (and the errors, at the same offsets) of
    /// ``JSONValue/parse(_:maxDepth:numbersAsWritten:)-(UnsafeRawBufferPointer,_,_)``, building no object around an
    /// object's members: only the values of `jsonrpc`, `id`, `method` and `params` are kept (every
    /// other member is parsed, and so checked, then dropped). The path of every request.
    static func parse(_ buffer: UnsafeRawBufferPointer, maxDepth: Int) throws(JSONParseError) -> RequestLine {
        var parser = JSONParser(bytes: buffer.assumingMemoryBound(to: UInt8.self), maxDepth: maxDepth)
        return try parser.parseRequestLine()
    }
}

// MARK: - Parser

private enum ASCII {
    static let tab: UInt8 = 0x09, newline: UInt8 = 0x0A, carriageReturn: UInt8 = 0x0D, space: UInt8 = 0x20
    static let quote: UInt8 = 0x22, backslash: UInt8 = 0x5C, slash: UInt8 = 0x2F
    static let comma: UInt8 = 0x2C, colon: UInt8 = 0x3A, minus: UInt8 = 0x2D, plus: UInt8 = 0x2B, dot: UInt8 = 0x2E
    static let zero: UInt8 = 0x30, nine: UInt8 = 0x39
    static let openBracket: UInt8 = 0x5B, closeBracket: UInt8 = 0x5D
    static let openBrace: UInt8 = 0x7B, closeBrace: UInt8 = 0x7D
}

/// An iterative recursive-descent parser: open containers live on an explicit stack, so the
/// call stack stays flat whatever the nesting.
private struct JSONParser {
    /// An open array or object. Contents live in `arrays`/`objects`/`keys`, mutated in place.
    private enum Container { case array, object }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let maxDepth: Int
    /// Whether a number that is not an `Int64` integer is kept as its text (a fragment).
    private let numbersAsWritten: Bool
    private var position = 0
    /// Open containers around the value being parsed that are not on `containers` (the request
    /// object of ``parseRequestLine()``), counted against `maxDepth`.
    private var outerDepth = 0
    private var containers: [Container] = []
    private var arrays: [[JSONValue]] = []
    private var objects: [JSONObject] = []
    /// The key awaiting its value, one per open object.
    private var keys: [String] = []
    /// Reused buffer for strings that contain escapes.
    private var scratch: [UInt8] = []
    /// Whether an object parsed by ``parseDocument()`` repeated a key (its last value kept).
    private(set) var repeatsKeys = false

    init(bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int, numbersAsWritten: Bool = false) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.numbersAsWritten = numbersAsWritten
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        let value = try parseValue()
        skipWhitespace()
        guard position == bytes.count else { throw error("unexpected \(describe(position)) after the JSON value") }
        return value
    }

    /// ``parseDocument()`` for a request line: an object's members are parsed one by one, each
    /// value on its own (as the generic path would, with the object counted in the depth), and
    /// only the envelope's are kept.
    mutating func parseRequestLine() throws(JSONParseError) -> RequestLine {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == ASCII.openBrace, maxDepth > 0 else {
            return .other(try parseDocument())
        }
        var envelope = RequestEnvelope()
        try parseMembers { (parser: inout JSONParser) throws(JSONParseError) in
            try parser.parseEnvelopeKey()
        } value: { (parser: inout JSONParser, member: EnvelopeMember?) throws(JSONParseError) in
            switch member {
            case .jsonrpc: envelope.jsonrpc = try parser.parseValue()
            case .id: envelope.id = try parser.parseRequestID()
            case .method: envelope.method = try parser.parseValue()
            case .params: envelope.params = try parser.parseObjectInPlace()
            case nil: _ = try parser.parseValue()
            }
        }
        skipWhitespace()
        guard position == bytes.count else { throw error("unexpected \(describe(position)) after the JSON value") }
        return .object(envelope)
    }

    /// Parses the object whose `{` is at `position` (the caller has checked its depth), with the
    /// checks and errors of ``parseValue()``: `key` reads each member's key and its `:`, `value` its
    /// value. The object is counted in the depth of what is nested in it (it is not on `containers`).
    private mutating func parseMembers<Key>(
        key: (inout JSONParser) throws(JSONParseError) -> Key,
        value: (inout JSONParser, Key) throws(JSONParseError) -> Void
    ) throws(JSONParseError) {
        position += 1
        outerDepth += 1
        defer { outerDepth -= 1 }
        skipWhitespace()
        if try peek(expecting: "a string key or '}'") != ASCII.closeBrace {
            while true {
                let member = try key(&self)
                try value(&self, member)
                skipWhitespace()
                let next = try peek(expecting: "',' or '}'")
                if next == ASCII.closeBrace { break }
                guard next == ASCII.comma else {
                    throw error("expected ',' or '}' after an object member, found \(describe(position))")
                }
                position += 1
                try rejectTrailingComma(before: ASCII.closeBrace)
            }
        }
        position += 1
    }

    /// ``parseValue()``, but an object is built member by member, each value parsed on its own:
    /// no container stack for a request's params, whose members are mostly scalars. A member
    /// `request_id` is read as ``parseRequestID()`` reads an id.
    private mutating func parseObjectInPlace() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == ASCII.openBrace else { return try parseValue() }
        guard outerDepth < maxDepth else { throw error("arrays and objects nested deeper than \(maxDepth) levels") }
        var object = JSONObject()
        try parseMembers { (parser: inout JSONParser) throws(JSONParseError) in
            try parser.parseKey()
        } value: { (parser: inout JSONParser, key: String) throws(JSONParseError) in
            // `request_id` names a request by its id (`code.input`): read as the id was.
            object[key] = key == "request_id" ? try parser.parseRequestID() : try parser.parseValue()
        }
        return .object(object)
    }

    /// The request members ``parseRequestLine()`` keeps.
    private enum EnvelopeMember {
        case jsonrpc, id, method, params

        /// The member spelled `key`, compared as a `String` (as an object lookup does).
        init?(_ key: String) {
            switch key {
            case "jsonrpc": self = .jsonrpc
            case "id": self = .id
            case "method": self = .method
            case "params": self = .params
            default: return nil
            }
        }

        /// The member whose key is the plain ASCII text `key` (no escapes).
        init?(ascii key: UnsafeBufferPointer<UInt8>) {
            func spells(_ name: StaticString) -> Bool {
                name.withUTF8Buffer { $0.elementsEqual(key) }
            }
            switch key.count {
            case 2 where spells("id"): self = .id
            case 6 where spells("method"): self = .method
            case 6 where spells("params"): self = .params
            case 7 where spells("jsonrpc"): self = .jsonrpc
            default: return nil
            }
        }
    }

    /// ``parseKey()`` for a member of the request object: which envelope member it names, if any.
    /// A key of printable ASCII without escapes is compared in place, with no string made.
    private mutating func parseEnvelopeKey() throws(JSONParseError) -> EnvelopeMember? {
        skipWhitespace()
        guard try peek(expecting: "a string key") == ASCII.quote else {
            throw error("expected a string key, found \(describe(position))")
        }
        let start = position + 1
        var end = start
        while end < bytes.count, (0x20..<0x7F).contains(bytes[end]), bytes[end] != ASCII.quote, bytes[end] != ASCII.backslash {
            end += 1
        }
        let member: EnvelopeMember?
        if end < bytes.count, bytes[end] == ASCII.quote {
            member = EnvelopeMember(ascii: UnsafeBufferPointer(rebasing: bytes[start..<end]))
            position = end + 1
        } else {
            member = EnvelopeMember(try parseString())
        }
        try parseColon()
        return member
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        while true {
            skipWhitespace()
            var value: JSONValue
            switch try peek(expecting: "a JSON value") {
            case ASCII.openBracket:
                try open(.array)
                skipWhitespace()
                if try peek(expecting: "a value or ']'") != ASCII.closeBracket { continue }  // To the first element.
                value = close()
            case ASCII.openBrace:
                try open(.object)
                skipWhitespace()
                if try peek(expecting: "a string key or '}'") != ASCII.closeBrace {
                    keys.append(try parseKey())
                    continue  // To the first member's value.
                }
                value = close()
            case ASCII.quote:
                value = .string(try parseString())
            case ASCII.minus, ASCII.zero...ASCII.nine:
                value = try parseNumber()
            case UInt8(ascii: "t"):
                value = try parseLiteral("true", .bool(true))
            case UInt8(ascii: "f"):
                value = try parseLiteral("false", .bool(false))
            case UInt8(ascii: "n"):
                value = try parseLiteral("null", .null)
            case UInt8(ascii: "N"), UInt8(ascii: "I"):
                throw error("NaN and Infinity are not valid JSON")
            default:
                throw error("expected a JSON value, found \(describe(position))")
            }
            // Hand the value to the enclosing containers, closing every one that ends here.
            while let container = containers.last {
                skipWhitespace()
                let next = try peek(expecting: container == .array ? "',' or ']'" : "',' or '}'")
                switch container {
                case .array:
                    arrays[arrays.count - 1].append(value)
                    if next == ASCII.comma {
                        position += 1
                        try rejectTrailingComma(before: ASCII.closeBracket)
                    } else if next == ASCII.closeBracket {
                        value = close()
                        continue
                    } else {
                        throw error("expected ',' or ']' after an array element, found \(describe(position))")
                    }
                case .object:
                    if objects[objects.count - 1].replaceOrAppend(keys.removeLast(), value) { repeatsKeys = true }
                    if next == ASCII.comma {
                        position += 1
                        try rejectTrailingComma(before: ASCII.closeBrace)
                        keys.append(try parseKey())
                    } else if next == ASCII.closeBrace {
                        value = close()
                        continue
                    } else {
                        throw error("expected ',' or '}' after an object member, found \(describe(position))")
                    }
                }
                break  // After a comma: parse the next value.
            }
            if containers.isEmpty { return value }
        }
    }

    private mutating func open(_ container: Container) throws(JSONParseError) {
        guard containers.count + outerDepth < maxDepth else { throw error("arrays and objects nested deeper than \(maxDepth) levels") }
        position += 1
        containers.append(container)
        switch container {
        case .array: arrays.append([])
        case .object: objects.append(JSONObject())
        }
    }

    /// Consumes the closing bracket or brace of the innermost container and returns its value.
    private mutating func close() -> JSONValue {
        position += 1
        switch containers.removeLast() {
        case .array: return .array(arrays.removeLast())
        case .object: return .object(objects.removeLast())
        }
    }

    /// Called just past a comma.
    private mutating func rejectTrailingComma(before closer: UInt8) throws(JSONParseError) {
        let comma = position - 1
        skipWhitespace()
        if position < bytes.count, bytes[position] == closer {
            throw error("trailing comma before '\(Character(Unicode.Scalar(closer)))'", at: comma)
        }
    }

    /// Parses `"key"` and the `:` after it.
    private mutating func parseKey() throws(JSONParseError) -> String {
        skipWhitespace()
        guard try peek(expecting: "a string key") == ASCII.quote else {
            throw error("expected a string key, found \(describe(position))")
        }
        let key = try parseString()
        try parseColon()
        return key
    }

    /// Consumes the `:` after an object key (and the whitespace before it).
    private mutating func parseColon() throws(JSONParseError) {
        skipWhitespace()
        guard try peek(expecting: "':'") == ASCII.colon else { throw error("expected ':' after an object key, found \(describe(position))") }
        position += 1
    }

    private mutating func parseLiteral(_ word: StaticString, _ value: JSONValue) throws(JSONParseError) -> JSONValue {
        let length = word.utf8CodeUnitCount
        guard bytes.count - position >= length,
              word.withUTF8Buffer({ $0.elementsEqual(bytes[position..<position + length]) })
        else { throw error("invalid literal; expected '\(word)'") }
        position += length
        return value
    }

    // MARK: Strings

    /// Parses a string starting at its opening quote. Unescaped runs are validated as UTF-8 and
    /// copied in bulk; only strings with escapes go through the scratch buffer.
    private mutating func parseString() throws(JSONParseError) -> String {
        position += 1
        let start = position
        var runStart = position
        var escaped = false
        while true {
            try scanUnescapedRun()
            guard position < bytes.count else { throw error("unterminated string", at: start - 1) }
            if bytes[position] == ASCII.quote {
                let run = UnsafeBufferPointer(rebasing: bytes[runStart..<position])
                position += 1
                if !escaped { return String(decoding: run, as: UTF8.self) }
                scratch.append(contentsOf: run)
                defer { scratch.removeAll(keepingCapacity: true) }
                return String(decoding: scratch, as: UTF8.self)
            }
            // A backslash: switch to building the string in `scratch`.
            escaped = true
            scratch.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<position]))
            try parseEscape()
            runStart = position
        }
    }

    /// Advances past bytes that need no unescaping, stopping at `"`, `\` or the end. Validates
    /// UTF-8 and rejects control characters on the way.
    private mutating func scanUnescapedRun() throws(JSONParseError) {
        let count = bytes.count
        var index = position
        defer { position = index }
        while index < count {
            // Eight ASCII bytes at a time while none of them is special.
            while count - index >= 8 {
                let word = UInt64(littleEndian: UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self))
                guard !Self.hasSpecialByte(word) else { break }
                index += 8
            }
            guard index < count else { return }
            let byte = bytes[index]
            switch byte {
            case ASCII.quote, ASCII.backslash:
                return
            case 0..<0x20:
                throw error("unescaped control character 0x\(hex(byte)) in string; it must be written as an escape", at: index)
            case 0x20..<0x80:
                index += 1
            default:
                index += try utf8SequenceLength(at: index)
            }
        }
    }

    /// Whether any byte of `word` is `"`, `\`, below 0x20 or non-ASCII.
    private static func hasSpecialByte(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ v: UInt64) -> UInt64 { (v &- ones) & ~v & highs }
        let control = (word &- ones &* 0x20) & ~word & highs
        return (word & highs) | control | hasZeroByte(word ^ (ones &* 0x22)) | hasZeroByte(word ^ (ones &* 0x5C)) != 0
    }

    /// Length of the valid multi-byte UTF-8 sequence at `index` (RFC 3629: no overlongs, no
    /// surrogates, nothing above U+10FFFF).
    private func utf8SequenceLength(at index: Int) throws(JSONParseError) -> Int {
        let lead = bytes[index]
        let length: Int, secondRange: ClosedRange<UInt8>
        switch lead {
        case 0xC2...0xDF: (length, secondRange) = (2, 0x80...0xBF)
        case 0xE0: (length, secondRange) = (3, 0xA0...0xBF)
        case 0xED: (length, secondRange) = (3, 0x80...0x9F)
        case 0xE1...0xEF: (length, secondRange) = (3, 0x80...0xBF)
        case 0xF0: (length, secondRange) = (4, 0x90...0xBF)
        case 0xF1...0xF3: (length, secondRange) = (4, 0x80...0xBF)
        case 0xF4: (length, secondRange) = (4, 0x80...0x8F)
        default: throw error("invalid UTF-8 byte 0x\(hex(lead)) in string", at: index)
        }
        guard bytes.count - index >= length, secondRange.contains(bytes[index + 1]),
              (2..<length).allSatisfy({ bytes[index + $0] & 0xC0 == 0x80 })
        else { throw error("invalid UTF-8 sequence in string", at: index) }
        return length
    }

    /// Decodes the escape at `position` (a backslash) into `scratch`.
    private mutating func parseEscape() throws(JSONParseError) {
        let escapeStart = position
        position += 1
        guard position < bytes.count else { throw error("unterminated string") }
        let byte = bytes[position]
        position += 1
        let simple: UInt8
        switch byte {
        case ASCII.quote, ASCII.backslash, ASCII.slash: simple = byte
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = ASCII.newline
        case UInt8(ascii: "r"): simple = ASCII.carriageReturn
        case UInt8(ascii: "t"): simple = ASCII.tab
        case UInt8(ascii: "u"):
            appendScalar(try parseUnicodeEscape())
            return
        default:
            throw error("invalid escape: backslash followed by \(describeByte(byte))", at: escapeStart)
        }
        scratch.append(simple)
    }

    /// Decodes `XXXX` after `\u`, combining a surrogate pair; a lone surrogate yields U+FFFD.
    private mutating func parseUnicodeEscape() throws(JSONParseError) -> Unicode.Scalar {
        let first = try parseHex4()
        switch first {
        case 0xD800...0xDBFF:
            let save = position
            if bytes.count - position >= 6, bytes[position] == ASCII.backslash, bytes[position + 1] == UInt8(ascii: "u") {
                position += 2
                let second = try parseHex4()
                if (0xDC00...0xDFFF).contains(second) {
                    return Unicode.Scalar(0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00))!
                }
                position = save  // Not a low surrogate: decode it as its own escape next.
            }
            return "\u{FFFD}"
        case 0xDC00...0xDFFF:
            return "\u{FFFD}"
        default:
            return Unicode.Scalar(first)!
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = try peek(expecting: "four hex digits after \\u")
            let digit: UInt8
            switch byte {
            case ASCII.zero...ASCII.nine: digit = byte - ASCII.zero
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit \(describe(position)) in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    private mutating func appendScalar(_ scalar: Unicode.Scalar) {
        UTF8.encode(scalar) { scratch.append($0) }
    }

    // MARK: Numbers

    private mutating func parseNumber() throws(JSONParseError) -> JSONValue {
        let (start, integer) = try scanNumber()
        if let integer { return .integer(integer) }
        if numbersAsWritten { return .fragment(JSONFragment(bytes: Array(bytes[start..<position]))) }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        // Past `Double`'s range the value is an infinity of the number's sign: the line is still
        // JSON, and a request's params are checked as usual (a timeout that long is none).
        // (The syntax was checked: `Double(_:)` fails on nothing else.)
        return .double(Double(text) ?? (bytes[start] == ASCII.minus ? -.infinity : .infinity))
    }

    /// ``parseValue()`` for a request's `id`: a number is kept as written (its text, as a
    /// ``JSONFragment``, whatever its range) unless it is an integer without fraction or exponent
    /// that fits in `Int64` (and is not `-0`), so that the response echoes the id unchanged.
    private mutating func parseRequestID() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == ASCII.minus || isDigit(at: position) else { return try parseValue() }
        let (start, integer) = try scanNumber()
        if let integer, integer != 0 || bytes[start] != ASCII.minus { return .integer(integer) }
        return .fragment(JSONFragment(bytes: Array(bytes[start..<position])))
    }

    /// Reads the number at `position`, checking its syntax: where its text starts, and its value
    /// when it is written without fraction or exponent and fits in `Int64`.
    private mutating func scanNumber() throws(JSONParseError) -> (start: Int, integer: Int64?) {
        let start = position
        let negative = bytes[position] == ASCII.minus
        if negative { position += 1 }
        let integerStart = position
        guard isDigit(at: position) else { throw error("expected a digit after '-'") }
        if bytes[position] == ASCII.zero {
            position += 1
            if isDigit(at: position) { throw error("leading zeros are not allowed", at: integerStart) }
        } else {
            skipDigits()
        }
        let integerEnd = position
        var isInteger = true
        if position < bytes.count, bytes[position] == ASCII.dot {
            position += 1
            guard isDigit(at: position) else { throw error("expected a digit after the decimal point") }
            skipDigits()
            isInteger = false
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            position += 1
            if position < bytes.count, bytes[position] == ASCII.plus || bytes[position] == ASCII.minus { position += 1 }
            guard isDigit(at: position) else { throw error("expected a digit in the exponent") }
            skipDigits()
            isInteger = false
        }
        return (start, isInteger ? int64(digits: integerStart..<integerEnd, negative: negative) : nil)
    }

    /// The integer spelled by the digits in `range`, or `nil` when it overflows `Int64`.
    private func int64(digits range: Range<Int>, negative: Bool) -> Int64? {
        var value: Int64 = 0
        for index in range {
            let digit = Int64(bytes[index] - ASCII.zero)
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = negative
                ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
            if overflow1 || overflow2 { return nil }
            value = next
        }
        return value
    }

    private func isDigit(at index: Int) -> Bool {
        index < bytes.count && (ASCII.zero...ASCII.nine).contains(bytes[index])
    }

    private mutating func skipDigits() {
        while isDigit(at: position) { position += 1 }
    }

    // MARK: Helpers

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case ASCII.space, ASCII.newline, ASCII.carriageReturn, ASCII.tab: position += 1
            default: return
            }
        }
    }

    /// The byte at `position`, or an "unexpected end" error naming what was expected.
    private func peek(expecting expected: String) throws(JSONParseError) -> UInt8 {
        guard position < bytes.count else { throw error("unexpected end of input; expected \(expected)") }
        return bytes[position]
    }

    private func error(_ reason: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(reason: reason, offset: offset ?? position)
    }

    /// "character 'x'", "byte 0x07" or "end of input" for the byte at `index`.
    private func describe(_ index: Int) -> String {
        index < bytes.count ? describeByte(bytes[index]) : "end of input"
    }

    private func describeByte(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "character '\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(hex(byte))"
    }
}

private func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16, uppercase: true)
    return byte < 0x10 ? "0" + digits : digits
}
