@preconcurrency import CPython

/// What the engine's native path for a cell's value (its main result) needs from the C API.
/// Every function here must be called with the GIL held.
extension PyBorrowed {
    /// The identity of the object's exact type (its type object's address): equal for two objects
    /// of the same type, different for a subclass.
    package var exactType: UnsafeMutableRawPointer { UnsafeMutableRawPointer(Py_TYPE(pointer)) }

    /// `repr(self)`; `nil` with the exception pending when the `__repr__` raised.
    package func representation() -> PyOwned? { PyOwned(stealing: PyObject_Repr(pointer)) }

    /// `self[key] = value` for a `dict` and a `str` key.
    package func setItem(named key: String, _ value: PyBorrowed) throws(PythonError) {
        guard PyDict_SetItemString(pointer, key, value.pointer) == 0 else { throw PythonError.fetch() }
    }

    /// `self[key] = value` for a `dict`; `false` with the exception pending when it failed.
    package func setItemKeepingError(_ key: PyBorrowed, _ value: PyBorrowed) -> Bool {
        PyDict_SetItem(pointer, key.pointer, value.pointer) == 0
    }
}

extension PythonCode {
    /// What ``constantValue(_:filename:builtins:)`` found.
    package enum ConstantStatement: ~Copyable {
        /// The statement is an expression; its value.
        case value(PyOwned)
        /// The statement is not an expression (`global x`, an `if False:` block): no value.
        case notExpression
        /// Evaluating it raised; the exception is pending.
        case failed
    }

    /// The value of a cell's last statement `text` when it compiled to nothing (see
    /// ``LastStatement/noCode(text:hidden:)``). The compiler folded it to a constant, so evaluating
    /// it again has no effect and gives that constant: literals and the arithmetic on them are
    /// evaluated natively (``ConstantExpression``); anything else is compiled on its own as an
    /// expression and evaluated with `builtins` as its globals.
    package static func constantValue(_ text: String, filename: PyBorrowed, builtins: PyBorrowed) -> ConstantStatement {
        // Most such statements are literals and arithmetic on them, evaluated without a compile.
        if let value = PyOwned(stealing: ConstantExpression.evaluate(text)) { return .value(value) }
        // The flags `compile(text, filename, "eval")` of a `str` uses.
        var flags = PyCompilerFlags(cf_flags: PyCF_SOURCE_IS_UTF8 | PyCF_IGNORE_COOKIE, cf_feature_version: PY_MINOR_VERSION)
        guard let code = PyOwned(stealing: Py_CompileStringObject(text, filename.pointer, Py_eval_input, &flags, -1)) else {
            PyErr_Clear()
            return .notExpression
        }
        guard let value = PyOwned(stealing: PyEval_EvalCode(code.pointer, builtins.pointer, builtins.pointer)) else { return .failed }
        return .value(value)
    }
}

/// The native evaluation of a constant expression statement's text: numbers, strings without
/// escapes or prefixes, `True`, `False`, `None`, parentheses, the unary `+ - ~` and the binary
/// `+ - * / // % **` with Python's precedence and associativity, each operation done by the same
/// C function the compiler's constant folding (and the evaluation loop) calls, so the value is the
/// one the compiler computed. Anything else in the text (names, other operators, commas, escapes,
/// comments, triple quotes, continuation lines...) gives `nil`, and the caller compiles the text
/// instead: this only skips the compile where its outcome is known.
///
/// Called only on text the compiler accepted as part of a cell (so it is valid Python).
private struct ConstantExpression {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0
    private var openParentheses = 0
    /// Nesting of the recursive descent (parentheses and unary operators), bounded.
    private var depth = 0
    private static let maximumDepth = 200

    private init(_ bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// The value of `text` as a new reference, or `nil` (no exception pending) when the text is
    /// not made only of what this evaluator covers.
    static func evaluate(_ text: String) -> PyPointer? {
        var text = text
        return text.withUTF8 { bytes -> PyPointer? in
            var parser = ConstantExpression(bytes)
            guard let value = parser.sum() else { return nil }
            parser.skipBlanks()
            return parser.index == bytes.count ? value.transfer() : nil
        }
    }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private func byte(after offset: Int) -> UInt8? { index + offset < bytes.count ? bytes[index + offset] : nil }

    /// Skips spaces, tabs and form feeds, and line breaks inside parentheses.
    private mutating func skipBlanks() {
        while let byte = current {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), 0x0C: index += 1
            case UInt8(ascii: "\n") where openParentheses > 0: index += 1
            case UInt8(ascii: "\r") where openParentheses > 0: index += 1
            default: return
            }
        }
    }

    /// The result of a C API call, or `nil` with its exception cleared.
    private static func checked(_ pointer: PyPointer?) -> PyOwned? {
        guard let value = PyOwned(stealing: pointer) else {
            PyErr_Clear()
            return nil
        }
        return value
    }

    /// `term (("+" | "-") term)*`
    private mutating func sum() -> PyOwned? {
        guard var value = term() else { return nil }
        while true {
            skipBlanks()
            guard let byte = current, byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") else { return value }
            index += 1
            guard let right = term() else { return nil }
            guard let combined = Self.checked(byte == UInt8(ascii: "+")
                ? PyNumber_Add(value.pointer, right.pointer) : PyNumber_Subtract(value.pointer, right.pointer)) else { return nil }
            value = combined
        }
    }

    /// `factor (("*" | "/" | "//" | "%") factor)*`
    private mutating func term() -> PyOwned? {
        guard var value = factor() else { return nil }
        while true {
            skipBlanks()
            let operation: (PyPointer?, PyPointer?) -> PyPointer?
            switch (current, byte(after: 1)) {
            case (UInt8(ascii: "*"), let next) where next != UInt8(ascii: "*") && next != UInt8(ascii: "="):
                operation = PyNumber_Multiply
                index += 1
            case (UInt8(ascii: "/"), UInt8(ascii: "/")):
                guard byte(after: 2) != UInt8(ascii: "=") else { return nil }
                operation = PyNumber_FloorDivide
                index += 2
            case (UInt8(ascii: "/"), let next) where next != UInt8(ascii: "="):
                operation = PyNumber_TrueDivide
                index += 1
            case (UInt8(ascii: "%"), let next) where next != UInt8(ascii: "="):
                operation = PyNumber_Remainder
                index += 1
            default:
                return value
            }
            guard let right = factor(), let combined = Self.checked(operation(value.pointer, right.pointer)) else { return nil }
            value = combined
        }
    }

    /// `("+" | "-" | "~") factor | power`
    private mutating func factor() -> PyOwned? {
        skipBlanks()
        let operation: (PyPointer?) -> PyPointer?
        switch current {
        case UInt8(ascii: "+"): operation = PyNumber_Positive
        case UInt8(ascii: "-"): operation = PyNumber_Negative
        case UInt8(ascii: "~"): operation = PyNumber_Invert
        default: return power()
        }
        index += 1
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth, let operand = factor() else { return nil }
        return Self.checked(operation(operand.pointer))
    }

    /// `atom ["**" factor]` (right-associative; a unary operator on the left applies to the power).
    private mutating func power() -> PyOwned? {
        guard let base = atom() else { return nil }
        skipBlanks()
        guard current == UInt8(ascii: "*"), byte(after: 1) == UInt8(ascii: "*") else { return base }
        index += 2
        guard let exponent = factor() else { return nil }
        return Self.checked(PyNumber_Power(base.pointer, exponent.pointer, pykernel_none()))
    }

    /// A number, a plain string, `True`, `False`, `None`, or `"(" sum ")"`.
    private mutating func atom() -> PyOwned? {
        skipBlanks()
        guard let byte = current else { return nil }
        switch byte {
        case UInt8(ascii: "("):
            index += 1
            openParentheses += 1
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maximumDepth, let value = sum() else { return nil }
            skipBlanks()
            guard current == UInt8(ascii: ")") else { return nil }
            index += 1
            openParentheses -= 1
            return value
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            return number()
        case UInt8(ascii: "."):
            guard let next = self.byte(after: 1), next >= UInt8(ascii: "0"), next <= UInt8(ascii: "9") else { return nil }
            return number()
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            return string(quote: byte)
        default:
            return keyword()
        }
    }

    /// A number literal: an `int` (decimal, `0x`, `0o`, `0b`) or a `float`; imaginary ones are left out.
    private mutating func number() -> PyOwned? {
        let start = index
        let radixPrefix = bytes[start] == UInt8(ascii: "0") && [UInt8(ascii: "x"), UInt8(ascii: "o"), UInt8(ascii: "b")].contains((byte(after: 1) ?? 0) | 0x20)
        var isFloat = false
        while let byte = current {
            let lower = byte | 0x20
            if (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || (lower >= UInt8(ascii: "a") && lower <= UInt8(ascii: "z")) {
                if !radixPrefix && lower == UInt8(ascii: "e") { isFloat = true }
                if lower == UInt8(ascii: "j") { return nil }
                index += 1
                // The sign of a decimal exponent.
                if !radixPrefix, lower == UInt8(ascii: "e"), let sign = current, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { index += 1 }
            } else if byte == UInt8(ascii: ".") {
                isFloat = true
                index += 1
            } else {
                break
            }
        }
        let token = UnsafeBufferPointer(rebasing: bytes[start..<index])
        if isFloat {
            guard !radixPrefix, let text = Self.checked(Self.decode(token)) else { return nil }
            return Self.checked(PyFloat_FromString(text.pointer))
        }
        // Up to 18 decimal digits fit an `Int64`: the same `int` without parsing a C string.
        if !radixPrefix, token.count <= 18, token.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            let value = token.reduce(Int64(0)) { $0 * 10 + Int64($1 - UInt8(ascii: "0")) }
            return Self.checked(PyLong_FromLongLong(value))
        }
        // `PyLong_FromString` reads a NUL-terminated string and refuses any character it does not take.
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: token.count + 1) { buffer in
            for (offset, byte) in token.enumerated() { buffer[offset] = CChar(bitPattern: byte) }
            buffer[token.count] = 0
            return Self.checked(PyLong_FromString(buffer.baseAddress, nil, 0))
        }
    }

    /// A single-quoted string without prefix, backslash or line break: its text is its value.
    private mutating func string(quote: UInt8) -> PyOwned? {
        // A triple quote (or `''` followed by a third) is left to the compiler.
        guard !(byte(after: 1) == quote && byte(after: 2) == quote) else { return nil }
        let start = index + 1
        index = start
        while let byte = current, byte != quote {
            guard byte != UInt8(ascii: "\\"), byte != UInt8(ascii: "\n"), byte != UInt8(ascii: "\r") else { return nil }
            index += 1
        }
        guard current == quote else { return nil }
        let text = Self.checked(Self.decode(UnsafeBufferPointer(rebasing: bytes[start..<index])))
        index += 1
        // Adjacent literals are concatenated by the parser: left to the compiler.
        skipBlanks()
        guard current != UInt8(ascii: "'"), current != UInt8(ascii: "\"") else { return nil }
        return text
    }

    /// `True`, `False` or `None`; any other name gives `nil`.
    private mutating func keyword() -> PyOwned? {
        let start = index
        while let byte = current, byte == UInt8(ascii: "_") || byte >= 0x80 || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) {
            index += 1
        }
        switch String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self) {
        case "True": return PyOwned(retaining: .true)
        case "False": return PyOwned(retaining: .false)
        case "None": return PyOwned(retaining: .none)
        default: return nil
        }
    }

    private static func decode(_ utf8: UnsafeBufferPointer<UInt8>) -> PyPointer? {
        utf8.withMemoryRebound(to: CChar.self) { PyUnicode_DecodeUTF8($0.baseAddress, $0.count, nil) }
    }
}
