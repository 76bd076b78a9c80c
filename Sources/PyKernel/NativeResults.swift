import EmbeddedPython

/// The native function behind the runtime's `_emit_result`: hands a rich result built in Python
/// (`display()`, the last expression's value) to the output, in order with the text written so far.
enum NativeResults {
    /// `emit((is_main_result, data, metadata_json, chart_json))`: `data` a `dict` of `str` to
    /// `str`, `metadata_json` and `chart_json` JSON text or `None`.
    static let emit: NativeFunctionPointer = { _, argument in
        guard let argument = PyBorrowed(argument), argument.tupleSize == 4,
            let isMain = argument.tupleItem(0), let dataObject = argument.tupleItem(1),
            let metadata = argument.tupleItem(2), let chart = argument.tupleItem(3),
            let data = dataObject.stringDictionaryValue
        else {
            return PythonSignals.raiseTypeError("emit_result() takes (bool, dict[str, str], str | None, str | None)")
        }
        let result = RichResult(
            isMainResult: isMain.isTrue, data: data,
            metadataJSON: metadata.isNone ? "{}" : (metadata.stringValue ?? "{}"),
            chartJSON: chart.isNone ? nil : chart.stringValue)
        let runtime = EmbeddedRuntime.current
        runtime.output.resultFromPython(result, owner: runtime.threadOwners.ownerOfCurrentThread())
        return PyOwned(retaining: .none).transfer()
    }
}
