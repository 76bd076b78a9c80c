"""Runs a traceback-corpus program as PyKernel cells; used by test_traceback_fidelity.py.

Always run with /usr/bin/python3.11 (the interpreter PyKernel embeds):

    traceback_driver.py cells PROG OUT
        Runs PROG's cells like the engine does (compile(src, "<cell-N>", "exec"), exec in one
        fresh namespace, sources registered in linecache) and writes
        pykernel_traceback.format_exception() of the failure to the file OUT (stdout and
        stderr are the program's).

    traceback_driver.py oracle PROG WORKDIR
        Writes each cell to WORKDIR/cell_N.py, runs the cells the same way but compiled with
        those real paths, and hands the failure to sys.__excepthook__ -- the C printer that
        ``python3.11 file.py`` uses -- which writes to stderr.  This is the reference for
        programs that ``python3.11 prog.py`` can't give one for (several cells; SystemExit).

    traceback_driver.py batch IN.json OUT.json WORKDIR
        For each program source in IN.json (one cell each) writes [kernel, reference] to
        OUT.json: the kernel text as in ``cells`` and sys.__excepthook__'s text for the same
        source run from WORKDIR/<i>/cell_1.py as in ``oracle`` (for SyntaxErrors this is not
        the ``python3.11 file.py`` reference: compile() parses a string, not a file).

The warnings module is imported up front: while it is not, CPython prints a compile-time
SyntaxWarning with the C fallback (_warnings.c show_warning), which reads the source line from
the file and so shows none for <cell-N>; the Python one reads linecache.

Cells are separated by lines that start with ``# %%``.  In both modes the frame of this driver
is cut from the traceback so the first frame is the cell's, as when the engine runs the code
from C with PyEval_EvalCode.
"""

import builtins
import linecache
import os
import sys
import warnings  # noqa: F401 -- see below

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.join(os.path.dirname(HERE), "runtime")


def load_engine_module(name):
    """Loads a runtime module as the engine does (PyOwned.module(named:source:)): its
    ``__builtins__`` is a copy of ``builtins`` taken now, which the code's rebinding of a
    built-in name (or of ``__import__``) leaves alone."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(RUNTIME, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    module.__builtins__ = dict(vars(builtins))
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


pykernel_traceback = load_engine_module("pykernel_traceback")


def split_cells(text):
    """The cells of a corpus program: the parts between ``# %%`` lines."""
    cells, current = [], []
    for line in text.splitlines(True):
        if line.startswith("# %%"):
            cells.append("".join(current))
            current = []
        else:
            current.append(line)
    cells.append("".join(current))
    if len(cells) > 1 and not cells[0].strip():
        cells.pop(0)
    return cells


def new_namespace():
    # What the engine gives a context (pykernel_runtime.new_namespace): python3's __main__
    # globals without __file__ and __cached__.
    return {"__name__": "__main__", "__doc__": None, "__package__": None,
            "__loader__": None, "__spec__": None, "__annotations__": {},
            "__builtins__": builtins}


def run_cells(cells, filenames):
    """Runs the cells in one namespace; returns the exception that stopped them, or None.

    The exception's traceback starts with this function's frame (the caller skips it)."""
    namespace = new_namespace()
    set_recursion_headroom()
    for source, filename in zip(cells, filenames):
        try:
            code = compile(source, filename, "exec")
        except SyntaxError as exc:
            return exc
        try:
            exec(code, namespace)
        except BaseException as exc:  # noqa: B036 -- SystemExit, KeyboardInterrupt too
            return exc
    return None


# The traceback as python3 reads it (the C field), whatever attribute access the exception's class
# customises (corpus: exception_getattribute_raises_for_everything).
traceback_of = BaseException.__traceback__.__get__
set_traceback = BaseException.__traceback__.__set__


def check_first_frame(exc):
    tb = traceback_of(exc)
    assert tb is not None and tb.tb_frame.f_code is run_cells.__code__, "harness frame expected"


RECURSION_LIMIT = sys.getrecursionlimit()


def set_recursion_headroom():
    # python3.11 prog.py runs <module> with no Python frame above it, and so does the engine
    # (PyEval_EvalCode from C).  Here the driver's frames sit above the cells, plus one level
    # for the exec() call: give that back so a RecursionError happens at the same depth of
    # user code.  Called from run_cells.
    depth = 0
    frame = sys._getframe(1)
    while frame is not None:
        depth += 1
        frame = frame.f_back
    sys.setrecursionlimit(RECURSION_LIMIT + depth + 1)


def set_printer_headroom():
    # python3.11 prog.py prints an uncaught exception with no Python frame under its hook; the
    # port takes the frames under it that are not its own as the code's (they make the C
    # printer give up on a long chain sooner): give the driver's back.  Called from format_cells.
    depth = 0
    frame = sys._getframe(1)
    while frame is not None:
        depth += 1
        frame = frame.f_back
    sys.setrecursionlimit(RECURSION_LIMIT + depth)


def install_cell_hooks():
    # As the engine does for contexts (pykernel_runtime.install): CPython's printers for a
    # thread's uncaught exception and for unraisable ones read source lines from files only, so
    # the port prints what they print, with the cells' lines.
    import threading

    def thread_hook(args):
        if args.exc_type is not SystemExit:
            sys.stderr.write(pykernel_traceback.format_thread_exception(args))

    threading.excepthook = thread_hook
    sys.unraisablehook = lambda unraisable: sys.stderr.write(pykernel_traceback.format_unraisable(unraisable))


def format_cells(cells):
    install_cell_hooks()
    filenames = ["<cell-%d>" % n for n in range(1, len(cells) + 1)]
    for source, filename in zip(cells, filenames):
        # As the engine registers a cell (pykernel_runtime.begin_run), where warnings find it.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # The printer shows the cells' lines, not those of entries the code puts in linecache.
    pykernel_traceback.registered_source = dict(zip(filenames, cells)).get
    exc = run_cells(cells, filenames)
    if exc is None:
        return None
    check_first_frame(exc)
    set_printer_headroom()
    return pykernel_traceback.format_exception(exc, skip_frames=1)


def excepthook_text(exc):
    import io
    set_traceback(exc, traceback_of(exc).tb_next)
    stderr, sys.stderr = sys.stderr, io.StringIO()
    try:
        sys.__excepthook__(type(exc), exc, traceback_of(exc))
        return sys.stderr.getvalue()
    finally:
        sys.stderr = stderr


def batch(sources, workdir):
    import io
    import json  # noqa: F401
    results = []
    for i, source in enumerate(sources):
        stdout, sys.stdout = sys.stdout, io.StringIO()
        try:
            kernel = format_cells([source])
            folder = os.path.join(workdir, str(i))
            os.mkdir(folder)
            path = os.path.join(folder, "cell_1.py")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(source)
            exc = run_cells([source], [path])
            reference = None if exc is None else excepthook_text(exc).replace(path, "<cell-1>")
        finally:
            sys.stdout = stdout
        results.append([kernel, reference])
    return results


def main(argv):
    mode, prog = argv[1], argv[2]
    if mode == "batch":
        import json
        with open(prog, encoding="utf-8") as f:
            sources = json.load(f)
        results = batch(sources, argv[4])
        with open(argv[3], "w", encoding="utf-8") as f:
            json.dump(results, f)
        return 0
    with open(prog, encoding="utf-8", newline="") as f:
        cells = split_cells(f.read())
    if mode == "cells":
        text = format_cells(cells)
        if text is None:
            return 0
        # backslashreplace: what sys.stderr does with lone surrogates
        with open(argv[3], "wb") as out:
            out.write(text.encode("utf-8", "backslashreplace"))
        return 1
    if mode == "oracle":
        workdir = argv[3]
        filenames = [os.path.join(workdir, "cell_%d.py" % n) for n in range(1, len(cells) + 1)]
        for source, filename in zip(cells, filenames):
            with open(filename, "w", encoding="utf-8", newline="") as f:
                f.write(source)
    else:
        raise SystemExit("unknown mode %r" % mode)

    exc = run_cells(cells, filenames)
    if exc is None:
        return 0
    check_first_frame(exc)
    set_traceback(exc, traceback_of(exc).tb_next)
    sys.__excepthook__(type(exc), exc, traceback_of(exc))
    sys.stderr.flush()
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
