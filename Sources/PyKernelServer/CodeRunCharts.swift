import Foundation
import JSONRPC
import Logging
import PyKernelProcess

/// The matplotlib charts of a Python `process.code_run`, as `artifacts.charts`.
///
/// The separate `python3` imports the project's chart module (`python/runtime/pykernel_charts.py`,
/// the one contexts use): a private directory put first on its `PYTHONPATH` holds that module and
/// a `sitecustomize` that installs its backend (unless the user chose one). Every figure shown,
/// and every figure still open when the program ends, is written as one JSON line — its chart
/// record plus `png` — to a file in that directory, the side channel read back after the run:
/// stdout is never parsed. The directory is removed after the run.
struct CodeRunCharts: Sendable {
    /// Bytes of chart records read back; the records past it are left out.
    static let recordLimit = 64 << 20

    let directory: String
    private var records: String { directory + "/charts.jsonl" }

    /// Prepares a Python run (`nil` for other languages, or when the directory cannot be made:
    /// the run then goes on without charts): writes the modules and points `PYTHONPATH` at them.
    /// - Parameter environment: The service's environment, whose `PYTHONPATH` is kept after ours.
    static func prepare(_ params: inout CodeRunParams, environment: [String: String], logger: Logger) -> CodeRunCharts? {
        guard params.language == .python else { return nil }
        var template = Array((NSTemporaryDirectory() as NSString).appendingPathComponent("pykernel-charts-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            logger.warning("process.code_run: no directory for the chart module (\(String(cString: strerror(errno)))); the run has no charts")
            return nil
        }
        let capture = CodeRunCharts(directory: String(cString: made))
        guard let charts = EmbeddedPythonSources.modules.first(where: { $0.name == "pykernel_charts" })?.source,
              FileManager.default.createFile(atPath: capture.directory + "/pykernel_charts.py", contents: Data(charts.utf8)),
              FileManager.default.createFile(atPath: capture.directory + "/sitecustomize.py", contents: Data(bootstrap.utf8)) else {
            logger.warning("process.code_run: could not write the chart module to \(capture.directory); the run has no charts")
            capture.remove()
            return nil
        }
        let inherited = params.env["PYTHONPATH"] ?? environment["PYTHONPATH"] ?? ""
        params.env["PYTHONPATH"] = inherited.isEmpty ? capture.directory : capture.directory + ":" + inherited
        params.env["PYKERNEL_CHARTS_FILE"] = capture.records
        return capture
    }

    /// The charts the run wrote, in order (each a chart record with `png`); the directory is removed.
    func collect() -> [JSONValue] {
        defer { remove() }
        guard let handle = FileHandle(forReadingAtPath: records) else { return [] }
        defer { try? handle.close() }
        let data = (try? handle.read(upToCount: Self.recordLimit)) ?? Data()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard case .object(let chart)? = try? JSONValue.parse(String(line)) else { return nil }
            return .object(chart)
        }
    }

    /// Removes the directory.
    func remove() {
        for name in ["charts.jsonl", "pykernel_charts.py", "sitecustomize.py"] { unlink(directory + "/" + name) }
        let cache = directory + "/__pycache__"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: cache)) ?? [] { unlink(cache + "/" + name) }
        rmdir(cache)
        rmdir(directory)
    }

    /// The `sitecustomize` of the run: installs the chart module's backend, writes each figure's
    /// record to `$PYKERNEL_CHARTS_FILE`, emits the figures of its backend still open at exit (before
    /// matplotlib's own exit handler closes them), hides itself from the program (`PYTHONPATH`, `sys.path`,
    /// the variable), and runs the `sitecustomize` it shadows, if any.
    private static let bootstrap = #"""
        import os
        import sys

        def _pykernel_setup():
            import atexit
            import importlib.machinery
            import importlib.util
            import types

            here = os.path.dirname(os.path.abspath(__file__))
            path = os.environ.pop("PYKERNEL_CHARTS_FILE", None)
            inherited = os.environ.get("PYTHONPATH", "")
            if inherited == here:
                del os.environ["PYTHONPATH"]
            elif inherited.startswith(here + os.pathsep):
                os.environ["PYTHONPATH"] = inherited[len(here) + 1:]
            if path is not None:
                import pykernel_charts

                def emit(record):
                    import json
                    _is_main, data, _metadata, chart = record
                    chart = json.loads(chart)
                    chart["png"] = data.get("image/png")
                    with open(path, "a", encoding="utf-8") as records:
                        records.write(json.dumps(chart, allow_nan=False, default=str) + "\n")

                results = types.ModuleType("pykernel_results")
                results._emit = emit
                sys.modules["pykernel_results"] = results
                pykernel_charts.install()

                def flush():
                    if pykernel_charts._active:  # figures drawn through our backend
                        pykernel_charts.flush_figures()

                # Once matplotlib has registered its own exit handler that closes the figures (at
                # the import of `_pylab_helpers`), register the emission of the open ones: exit
                # handlers run last registered, first run.
                pykernel_charts.after_import("matplotlib._pylab_helpers", lambda _module: atexit.register(flush), once=True)
            shadowed = importlib.machinery.PathFinder.find_spec("sitecustomize", [p for p in sys.path if p != here])
            sys.path[:] = [p for p in sys.path if p != here]
            if shadowed is not None and shadowed.loader is not None:
                module = importlib.util.module_from_spec(shadowed)
                sys.modules["sitecustomize"] = module
                shadowed.loader.exec_module(module)

        _pykernel_setup()
        del _pykernel_setup
        """#
}
