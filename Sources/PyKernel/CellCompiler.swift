import EmbeddedPython

/// Compiles cells, keeping the code of those run again: a source seen a second time is compiled
/// once more with every warning raised as an error, and when that succeeds (it cannot warn: the
/// compiler's `SyntaxWarning`s, the tokenizer's `DeprecationWarning`s) its code is kept, and later
/// runs of the same source get a copy under their own cell's filename instead of a compilation.
/// A source whose compilation warns or fails is compiled each time, as before, so its warnings
/// come every time under whatever filters the code set.
///
/// Cells are compiled with the same flags in every context, plus the `from __future__` features
/// earlier cells of the context imported (see ``code(of:source:filename:futureFlags:last:)``),
/// so one cache, keyed by the source and those features, serves the whole interpreter (a grader
/// running the same checks in 100 contexts compiles them once). A hit skips `compile`'s audit
/// event. Interpreter thread only, holding the GIL.
final class CellCompiler {
    /// Sources longer than this are compiled each time and not remembered.
    static let maxSourceBytes = 64 << 10
    /// When the sources remembered exceed either bound, the least recently used half is dropped.
    static let maxEntries = 256
    static let maxTotalBytes = 1 << 20

    private enum State {
        /// Compiled once: the next run of the source puts its code in the cache.
        case seenOnce
        /// Its code, never run or patched (runs get copies), and how its last statement reads.
        case compiled(CompiledCode)
        /// Its compilation warned or failed: compiled at each run.
        case compiledEachTime
    }

    private final class CompiledCode {
        let code: PyOwned
        let last: PythonCode.LastStatement
        init(code: consuming PyOwned, last: PythonCode.LastStatement) {
            self.code = code
            self.last = last
        }
    }

    private struct Entry {
        var state: State
        var lastUse: UInt64
    }

    /// A source and the future features it is compiled with (its code differs with them).
    private struct Key: Hashable {
        let text: String
        let futureFlags: Int32
    }

    private let compile: PyOwned
    private let copier: CodeCopier
    private let execMode: PyOwned
    private let flags: PyOwned
    /// The value of `flags`.
    private let baseFlags: Int
    /// `[("error", None, Warning, None, 0)]`, the filters of the strict compilation.
    private let warningsAsErrors: PyOwned
    private let warningsName: PyOwned
    private var entries: [Key: Entry] = [:]
    private var totalBytes = 0
    private var uses: UInt64 = 0

    /// - Parameters: `compile`: builtins' `compile`; `flags`: the flags cells are compiled with.
    init(compile: PyBorrowed, flags: PyBorrowed) throws(PythonError) {
        self.compile = PyOwned(retaining: compile)
        self.flags = PyOwned(retaining: flags)
        guard let baseFlags = flags.integerValue else { throw PythonError("the flags cells are compiled with are not an int") }
        self.baseFlags = baseFlags
        copier = try CodeCopier()
        execMode = try PyOwned.string("exec")
        warningsName = try PyOwned.string("warnings")
        let builtins = try PyOwned.importModule("builtins")
        let error = try PyOwned.string("error")
        let warning = try builtins.borrowed.attribute("Warning")
        let anyLine = try PyOwned.integer(0)
        guard let filter = PyOwned.tuple(error.borrowed, .none, warning.borrowed, .none, anyLine.borrowed),
            let filters = PyOwned.list(filter.borrowed)
        else { throw PythonError.fetch() }
        warningsAsErrors = filters
    }

    /// The code of a cell whose text is `text` (`source`, as a `str`), named `filename`: a new code
    /// object the caller may patch and run, `nil` with the compiler's exception pending. `last` is
    /// set to how its last statement reads when that is known already.
    /// - Parameter futureFlags: The `from __future__` features in force (`PyCF_MASK` bits: those
    ///   of the context's earlier cells, see ``PyBorrowed/futureFlags``), compiled with as
    ///   python3's REPL (`codeop`) and IPython compile what follows such an import.
    func code(
        of text: String, source: PyBorrowed, filename: PyBorrowed, futureFlags: Int32, last: inout PythonCode.LastStatement?
    ) -> PyOwned? {
        // The usual cell has no future feature in force: the flags' `int` is made once.
        let flags: PyOwned? = futureFlags == 0 ? PyOwned(retaining: self.flags.borrowed) : PyOwned.integerKeepingError(baseFlags | Int(futureFlags))
        guard let flags else { return nil }
        guard text.utf8.count <= Self.maxSourceBytes else { return compileNow(source, filename, flags.borrowed) }
        uses += 1
        let key = Key(text: text, futureFlags: futureFlags)
        // One hash of the key per run: the entry is found once and changed in place.
        guard let index = entries.index(forKey: key) else {
            remember(key, Entry(state: .seenOnce, lastUse: uses))
            return compileNow(source, filename, flags.borrowed)
        }
        entries.values[index].lastUse = uses
        if case .seenOnce = entries.values[index].state {
            if let code = compileWithoutWarnings(source, filename, flags.borrowed) {
                let last = PythonCode.lastStatement(code.borrowed, source: text)
                entries.values[index].state = .compiled(CompiledCode(code: code, last: last))
            } else {
                entries.values[index].state = .compiledEachTime
            }
        }
        guard case .compiled(let compiled) = entries.values[index].state else { return compileNow(source, filename, flags.borrowed) }
        guard let copy = copier.copy(compiled.code.borrowed, filename: filename) else {
            _ = PythonException.take()
            return compileNow(source, filename, flags.borrowed)
        }
        last = compiled.last
        return copy
    }

    private func compileNow(_ source: PyBorrowed, _ filename: PyBorrowed, _ flags: PyBorrowed) -> PyOwned? {
        compile.borrowed.callKeepingError(source, filename, execMode.borrowed, flags)
    }

    /// Compiles with every warning an error; `nil` (nothing pending) when it warned or failed, or
    /// when the `warnings` module is gone.
    private func compileWithoutWarnings(_ source: PyBorrowed, _ filename: PyBorrowed, _ flags: PyBorrowed) -> PyOwned? {
        let compiled: PyOwned?? = PythonWarnings.withFilters(warningsAsErrors.borrowed, moduleName: warningsName.borrowed) {
            guard let code = compileNow(source, filename, flags) else {
                _ = PythonException.take()
                return nil
            }
            return code
        }
        guard let compiled, let code = compiled else { return nil }
        return code
    }

    private func remember(_ key: Key, _ entry: Entry) {
        entries[key] = entry
        totalBytes += key.text.utf8.count
        guard entries.count > Self.maxEntries || totalBytes > Self.maxTotalBytes else { return }
        let oldest = entries.sorted { $0.value.lastUse < $1.value.lastUse }.prefix(entries.count / 2)
        for (key, _) in oldest {
            entries[key] = nil
            totalBytes -= key.text.utf8.count
        }
    }
}
