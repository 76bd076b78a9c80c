import EmbeddedPython

/// The edit distance behind "Did you mean" suggestions, natively: a port of `levenshtein_distance`
/// in CPython 3.11's `Python/suggestions.c`, which `pykernel_traceback` (the port of CPython's
/// exception printer) otherwise computes in Python, at ~20 µs a candidate: a `NameError` checked
/// every global and builtin name in milliseconds.
enum NativeSuggestions {
    private static let moveCost = 2
    private static let caseCost = 1
    private static let maxStringSize = 40
    private static let maxCandidateItems = 750

    /// `_calculate_suggestions(candidates: list, name: str) -> str | None`: `calculate_suggestions`
    /// of `suggestions.c`, on the UTF-8 of the names like the C code. Raises (and the printer then
    /// shows no suggestion) where the C code fails: a candidate that is not a `str`.
    static let calculateSuggestions: NativeKeywordFunctionPointer = { _, arguments, countAndFlags, _ in
        guard vectorcallArgumentCount(countAndFlags) == 2, let arguments,
            let candidates = PyBorrowed(arguments[0])?.listItems, let name = PyBorrowed(arguments[1])
        else { return PythonSignals.raiseTypeError("_calculate_suggestions(candidates: list, name: str)") }
        guard candidates.count < maxCandidateItems else { return PyOwned(retaining: .none).transfer() }
        var suggestion: PyBorrowed?
        var failed = false
        let nameIsText = name.withStrictUTF8 { nameBytes, _ in
            var suggestionDistance = Int.max
            for item in candidates {
                let itemIsText = item.withStrictUTF8 { itemBytes, itemText in
                    if name.equalsCString(itemText) { return }
                    // No more than 1/3 of the involved characters should need changed; don't take
                    // matches already beaten.
                    let maxDistance = min((nameBytes.count + itemBytes.count + 3) * moveCost / 6, suggestionDistance - 1)
                    let itemDistance = distance(nameBytes, itemBytes, maxCost: maxDistance)
                    if itemDistance > maxDistance { return }
                    if suggestion == nil || itemDistance < suggestionDistance {
                        suggestion = item
                        suggestionDistance = itemDistance
                    }
                }
                if !itemIsText {
                    failed = true
                    return
                }
            }
        }
        guard nameIsText, !failed else { return nil }
        return PyOwned(retaining: suggestion ?? .none).transfer()
    }

    /// `_levenshtein_distance(a: bytes, b: bytes, max_cost: int) -> int`, as the runtime's Python
    /// version defines it; `TypeError` for other arguments.
    static let levenshteinDistance: NativeKeywordFunctionPointer = { _, arguments, countAndFlags, _ in
        let count = vectorcallArgumentCount(countAndFlags)
        guard count == 3, let arguments,
            let a = PyBorrowed(arguments[0]), let b = PyBorrowed(arguments[1]),
            let maxCost = PyBorrowed(arguments[2])?.integerValue
        else { return PythonSignals.raiseTypeError("_levenshtein_distance(a: bytes, b: bytes, max_cost: int)") }
        var result: Int?
        _ = a.withBufferContents { first in
            b.withBufferContents { second in
                result = distance(first, second, maxCost: maxCost)
                return true
            } ?? false
        }
        guard let result else { return PythonSignals.raiseTypeError("_levenshtein_distance takes two bytes objects") }
        return (try? PyOwned.integer(result))?.transfer()
    }

    private static func substitutionCost(_ a: UInt8, _ b: UInt8) -> Int {
        if a & 31 != b & 31 { return moveCost }
        if a == b { return 0 }
        let lowerA = (65...90).contains(a) ? a + 32 : a
        let lowerB = (65...90).contains(b) ? b + 32 : b
        return lowerA == lowerB ? caseCost : moveCost
    }

    static func distance(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, maxCost: Int) -> Int {
        var a = first[...]
        var b = second[...]
        if a.elementsEqual(b) { return 0 }
        // Trim away common affixes.
        while let x = a.first, let y = b.first, x == y {
            a = a.dropFirst()
            b = b.dropFirst()
        }
        while let x = a.last, let y = b.last, x == y {
            a = a.dropLast()
            b = b.dropLast()
        }
        if a.isEmpty || b.isEmpty { return (a.count + b.count) * moveCost }
        if a.count > maxStringSize || b.count > maxStringSize { return maxCost + 1 }
        // Prefer the shorter buffer.
        if b.count < a.count { swap(&a, &b) }
        // Quick fail when a match is impossible.
        if (b.count - a.count) * moveCost > maxCost { return maxCost + 1 }
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: maxStringSize) { buffer in
            for index in 0..<a.count { buffer[index] = (index + 1) * moveCost }
            var result = 0
            for (bIndex, code) in b.enumerated() {
                var distance = bIndex * moveCost
                result = distance
                var minimum = Int.max
                for (index, other) in a.enumerated() {
                    let substitute = distance + substitutionCost(code, other)
                    distance = buffer[index]
                    let insertDelete = min(result, distance) + moveCost
                    result = min(insertDelete, substitute)
                    buffer[index] = result
                    minimum = min(minimum, result)
                }
                // Everything in this row is too expensive.
                if minimum > maxCost { return maxCost + 1 }
            }
            return result
        }
    }
}
