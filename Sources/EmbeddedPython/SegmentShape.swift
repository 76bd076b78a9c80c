/// What the top of a located segment's parse tree is, as far as a traceback's caret anchors need:
/// CPython 3.11's `extract_anchors_from_line` parses the segment (`_PyParser_ASTFromString`,
/// `Py_file_input`) and anchors only a single expression statement that is a `BinOp` (the
/// operator, between the left operand's end and the right one's start) or a `Subscript` (from the
/// value's end to the slice's end).
package enum SegmentShape: Sendable {
    /// A `BinOp`: the left operand's `end_col_offset` and the right operand's `col_offset`.
    case binaryOperation(leftEnd: Int, rightStart: Int)
    /// A `Subscript`: the value's `end_col_offset` and the slice's.
    case subscription(valueEnd: Int, sliceEnd: Int)
    /// Anything else that parses: no anchors.
    case other

    /// The shape of an ASCII segment read without a parser, or `nil` when the segment is not of
    /// the simple grammar below (the caller then parses it as CPython does).
    ///
    /// The grammar, every sentence of which CPython parses to the tree described, with no
    /// warning and with the same offsets:
    ///
    ///     segment  := primary (operator primary)* whitespace*
    ///     primary  := atom ('.' name | '[' primary (operator primary)* ']')*   (trailers on a name only)
    ///     atom     := name | integer | string
    ///     operator := + - * / // % @ ** << >> & | ^
    ///
    /// with whitespace (space, tab, form feed) allowed between tokens, a `name` any ASCII
    /// identifier but a keyword (hard, or `match`/`case`), an `integer` decimal (`0…` or a
    /// non-zero digit first), not followed by a name character or `.`, a `string` quoted with `'`
    /// or `"`, without prefix, backslash (no escape can warn) or triple quotes, and brackets nested
    /// at most ``maximumDepth`` deep. The root of an operator chain is its last operator of the
    /// lowest precedence (its first one when that is `**`, which binds to the right); there is
    /// no unary operator, so nothing else moves it.
    package static func read(_ segment: UnsafeBufferPointer<UInt8>) -> SegmentShape? {
        var reader = Reader(bytes: segment)
        guard let top = reader.chain(depth: 0) else { return nil }
        reader.skipWhitespace()
        guard reader.index == segment.count else { return nil }
        if let root = top.root {
            return .binaryOperation(leftEnd: root.leftEnd, rightStart: root.rightStart)
        }
        if let last = top.lastSubscript { return .subscription(valueEnd: last.valueEnd, sliceEnd: last.sliceEnd) }
        return .other
    }

    /// Deeper brackets are left to the parser (whose limits are far above this).
    private static let maximumDepth = 8

    /// An operator chain read so far: its operands' bounds and its root operator.
    private struct Chain {
        /// Where the chain's last operand ends.
        var end: Int
        /// The root operator's neighbours, once there is an operator.
        var root: (leftEnd: Int, rightStart: Int)?
        var rootPrecedence = Int.max
        /// The last trailer of a chain that is a single primary ending with a subscript.
        var lastSubscript: (valueEnd: Int, sliceEnd: Int)?
    }

    private struct Reader {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0C { index += 1 }
        }

        /// `primary (operator primary)*`, starting at a token (not whitespace).
        mutating func chain(depth: Int) -> Chain? {
            guard let first = primary(depth: depth) else { return nil }
            var chain = Chain(end: first.end, lastSubscript: first.lastSubscript)
            while true {
                let beforeOperator = index
                skipWhitespace()
                guard let precedence = binaryOperator() else {
                    index = beforeOperator
                    return chain
                }
                skipWhitespace()
                guard let operand = primary(depth: depth) else { return nil }
                // `**` is right-associative: its first occurrence is the root of a run of them.
                if precedence < chain.rootPrecedence || (precedence == chain.rootPrecedence && precedence != Self.powerPrecedence) {
                    chain.root = (chain.end, operand.start)
                    chain.rootPrecedence = precedence
                }
                chain.end = operand.end
                chain.lastSubscript = nil
            }
        }

        /// `atom trailer*`; its bounds and, when its last trailer is a subscript, that subscript's.
        private mutating func primary(depth: Int) -> (start: Int, end: Int, lastSubscript: (valueEnd: Int, sliceEnd: Int)?)? {
            let start = index
            guard let byte = current else { return nil }
            if Self.isDigit(byte) {
                guard integer() else { return nil }
                return (start, index, nil)
            }
            if byte == 0x27 || byte == 0x22 {
                guard string() else { return nil }
                return (start, index, nil)
            }
            guard name() else { return nil }
            var end = index
            var lastSubscript: (valueEnd: Int, sliceEnd: Int)?
            while true {
                let afterPrimary = index
                skipWhitespace()
                switch current {
                case 0x2E:  // .
                    index += 1
                    skipWhitespace()
                    guard name() else { return nil }
                    lastSubscript = nil
                case 0x5B:  // [
                    guard depth < SegmentShape.maximumDepth else { return nil }
                    index += 1
                    skipWhitespace()
                    guard let slice = chain(depth: depth + 1) else { return nil }
                    skipWhitespace()
                    guard current == 0x5D else { return nil }  // ]
                    index += 1
                    lastSubscript = (end, slice.end)
                default:
                    index = afterPrimary
                    return (start, end, lastSubscript)
                }
                end = index
            }
        }

        /// A decimal integer: `0+` or a non-zero digit then digits, followed by neither a name
        /// character (`1if` warns, `1e5`, `1_0`, `0x1` are other literals) nor `.` (a float).
        private mutating func integer() -> Bool {
            let start = index
            while let byte = current, Self.isDigit(byte) { index += 1 }
            if bytes[start] == 0x30, bytes[start..<index].contains(where: { $0 != 0x30 }) { return false }
            if let byte = current, Self.isNameCharacter(byte) || byte == 0x2E { return false }
            return true
        }

        /// A string literal without prefix, backslash or triple quotes (`''` is the empty string).
        private mutating func string() -> Bool {
            let start = index
            let quote = bytes[start]
            index += 1
            while let byte = current, byte != quote {
                if byte == 0x5C { return false }
                index += 1
            }
            guard current == quote else { return false }  // unterminated
            index += 1
            // `''` followed by the same quote opens a triple-quoted string.
            return !(index - start == 2 && current == quote)
        }

        /// An identifier that is no keyword.
        private mutating func name() -> Bool {
            let start = index
            guard let first = current, Self.isNameCharacter(first), !Self.isDigit(first) else { return false }
            while let byte = current, Self.isNameCharacter(byte) { index += 1 }
            return !Self.isKeyword(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        }

        static let powerPrecedence = 6

        /// Reads a binary operator, returning its precedence (lowest first: `|` `^` `&`
        /// shifts, `+ -`, `* / // % @`, `**`), or returns `nil` having read nothing.
        private mutating func binaryOperator() -> Int? {
            guard let byte = current else { return nil }
            let next = index + 1 < bytes.count ? bytes[index + 1] : 0
            let (length, precedence): (Int, Int)
            switch byte {
            case 0x7C: (length, precedence) = (1, 0)  // |
            case 0x5E: (length, precedence) = (1, 1)  // ^
            case 0x26: (length, precedence) = (1, 2)  // &
            case 0x3C, 0x3E:  // << >> (a lone < or > compares)
                guard next == byte else { return nil }
                (length, precedence) = (2, 3)
            case 0x2B, 0x2D: (length, precedence) = (1, 4)  // + -
            case 0x2F: (length, precedence) = (next == 0x2F ? 2 : 1, 5)  // / //
            case 0x25, 0x40: (length, precedence) = (1, 5)  // % @
            case 0x2A: (length, precedence) = next == 0x2A ? (2, Self.powerPrecedence) : (1, 5)  // ** *
            default: return nil
            }
            index += length
            return precedence
        }

        private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

        private static func isNameCharacter(_ byte: UInt8) -> Bool {
            isDigit(byte) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
        }

        /// Python 3.11's keywords, and the soft keywords that can start a statement.
        private static let keywords: [[UInt8]] = [
            "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del",
            "elif", "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal",
            "not", "or", "pass", "raise", "return", "try", "while", "with", "yield", "match", "case",
        ].map { Array($0.utf8) }

        private static func isKeyword(_ name: UnsafeBufferPointer<UInt8>) -> Bool {
            // Every keyword starts with a lower-case letter or F, N, T, and is 2 to 8 letters long.
            guard name.count >= 2, name.count <= 8 else { return false }
            return keywords.contains { $0.count == name.count && $0.elementsEqual(name) }
        }
    }
}
