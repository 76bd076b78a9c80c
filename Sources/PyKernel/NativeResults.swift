import EmbeddedPython
import PyKernelSupport

/// The native function behind the runtime's `_emit_result`: hands a rich result built in Python
/// (`display()`, the last expression's value) to the output, in order with the text written so far.
enum NativeResults {
    /// `emit((is_main_result, data, metadata_json, chart_json))`: `data` a `dict` of `str` to
    /// `str`, `metadata_json` and `chart_json` JSON text or `None`.
    static let emit: NativeFunctionPointer = { _, argument in
        let runtime = EmbeddedRuntime.current
        let owner = runtime.threadOwners.ownerOfCurrentThread()
        let limit = runtime.output.resultLimit(owner: owner, otherwise: defaultLimit)
        guard let argument = PyBorrowed(argument), argument.tupleSize == 4,
            let isMain = argument.tupleItem(0), let dataObject = argument.tupleItem(1),
            let metadata = argument.tupleItem(2), let chart = argument.tupleItem(3),
            let data = dataObject.stringDictionaryValue({ type, value in
                isKeptWhole(type) ? value.stringValue : text(of: value, within: limit)
            })
        else {
            return PythonSignals.raiseTypeError("emit_result() takes (bool, dict[str, str], str | None, str | None)")
        }
        let result = RichResult(
            isMainResult: isMain.isTrue, data: data,
            metadataJSON: metadata.isNone ? "{}" : (metadata.stringValue ?? "{}"),
            chartJSON: chart.isNone ? nil : chart.stringValue)
        runtime.output.resultFromPython(result, owner: owner)
        return PyOwned(retaining: .none).transfer()
    }

    /// Whether a representation of this MIME type is kept whole, whatever the run's
    /// `max_output_bytes`: base64 of binary data (every `image/*` type but SVG, which is text,
    /// `audio/*`, `video/*`, `application/pdf`, `application/octet-stream`: a cut one is no image)
    /// and JSON (`application/json` and every `+json` type: a cut one is no JSON). Every other
    /// representation is text (`text/*`, `application/javascript`, `image/svg+xml`,
    /// `application/xml`, a custom type) and is cut as output is. Types are compared as MIME
    /// says: without case, and without parameters (`application/json; charset=utf-8`).
    static func isKeptWhole(_ type: String) -> Bool {
        let essence = (type.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            .filter { $0 != " " && $0 != "\t" }.lowercased()
        if essence.hasPrefix("image/") { return essence != "image/svg+xml" }
        return essence.hasPrefix("audio/") || essence.hasPrefix("video/") || essence == "application/pdf"
            || essence == "application/octet-stream" || essence == "application/json" || essence.hasSuffix("+json")
    }

    /// The limit of a result whose run is not known (the default `max_output_bytes`).
    static let defaultLimit = 1 << 20

    /// A rich result's text as the result keeps it: longer than `limit` bytes (the run's
    /// `max_output_bytes`), its head and tail joined by a line saying how much was left out, so
    /// the `repr` of a 3 GB string does not become a 3 GB response; the middle is never copied.
    static func text(of object: PyBorrowed, within limit: Int) -> String? {
        var kept: (head: String, tail: String, omittedBytes: Int)?
        guard object.withUTF8Text(.backslashReplace, { kept = HeadTailBuffer.parts(of: $0, limit: limit); return true }) != nil,
            let (head, tail, omitted) = kept
        else { return nil }
        guard omitted > 0 else { return head }
        return head + HeadTailBuffer.omissionLine(omitted) + tail
    }
}

/// The native path for the value of a cell's last expression (its main result), for values whose
/// whole bundle is their `repr`: an object of one of the exact built-in types of
/// `pykernel_results._PLAIN_TYPES` (`int`, `str`, `list`, `dict`...; not a subclass) has no
/// `_repr_*_` method and is no figure, so its bundle is `{"text/plain": repr(value)}`, whatever
/// it holds (as in IPython, only the value itself is asked for representations). Anything else
/// goes to `pykernel_results.main_result`. Used on the interpreter thread, with the GIL held.
final class PlainMainResults {
    /// The exact types whose bundle is their `repr` (built-in types, alive as long as the interpreter).
    private let plainTypes: [UnsafeMutableRawPointer]
    /// The name `"_"`, which a main result is bound to.
    let underscore: PyOwned
    /// `{"__builtins__": builtins}`: the globals a constant last statement is evaluated with.
    let constantGlobals: PyOwned
    private let runtime: EmbeddedRuntime

    /// - Parameter results: The `pykernel_results` module.
    init(results: PyBorrowed, runtime: EmbeddedRuntime) throws(PythonError) {
        self.runtime = runtime
        // Every object is bound to a name: an owner's lifetime ends at its last use.
        let builtins = try PyOwned.importModule("builtins")
        let list = try builtins.borrowed.attribute("list")
        let typeSet = try results.attribute("_PLAIN_TYPES")
        let types = try list.borrowed.call(typeSet.borrowed)
        guard let items = types.borrowed.listItems else { throw PythonError("pykernel_results._PLAIN_TYPES is not a set of types") }
        plainTypes = items.map { UnsafeMutableRawPointer($0.pointer) }
        underscore = try PyOwned.string("_")
        constantGlobals = try PyOwned.stringDictionary([:])
        try constantGlobals.borrowed.setItem(named: "__builtins__", builtins.borrowed)
    }

    /// Whether `value`'s bundle is its `repr` (its type is exactly one of the plain types).
    func isPlain(_ value: PyBorrowed) -> Bool { plainTypes.contains(value.exactType) }

    /// Shows a plain value as `pykernel_results.main_result` would: emits
    /// `{"text/plain": repr(value)}`. Returns the exception its `repr` raised (a huge `int`, an
    /// element's `__repr__`), else `nil`.
    func show(_ value: PyBorrowed) -> PyOwned? {
        guard let text = value.representation() else { return PythonException.take() }
        let owner = runtime.threadOwners.ownerOfCurrentThread()
        let limit = runtime.output.resultLimit(owner: owner, otherwise: NativeResults.defaultLimit)
        let result = RichResult(isMainResult: true, text: NativeResults.text(of: text.borrowed, within: limit) ?? "")
        runtime.output.resultFromPython(result, owner: owner)
        return nil
    }
}
