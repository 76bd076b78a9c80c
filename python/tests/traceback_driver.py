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

Cells are separated by lines that start with ``# %%``.  In both modes the frame of this driver
is cut from the traceback so the first frame is the cell's, as when the engine runs the code
from C with PyEval_EvalCode.
"""

import builtins
import linecache
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "runtime"))

import pykernel_traceback  # noqa: E402


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


def check_first_frame(exc):
    tb = exc.__traceback__
    assert tb is not None and tb.tb_frame.f_code is run_cells.__code__, "harness frame expected"


def with_recursion_headroom():
    # python3.11 prog.py runs <module> with no Python frame above it, and so does the engine
    # (PyEval_EvalCode from C).  Here main(), run_cells() and this module's frame sit above the
    # cells, plus one level for the exec() call: give that back so a RecursionError happens at
    # the same depth of user code.
    depth = 1
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    sys.setrecursionlimit(sys.getrecursionlimit() + depth)


def main(argv):
    mode, prog = argv[1], argv[2]
    with open(prog, encoding="utf-8", newline="") as f:
        cells = split_cells(f.read())
    if mode == "cells":
        filenames = ["<cell-%d>" % n for n in range(1, len(cells) + 1)]
        for source, filename in zip(cells, filenames):
            # As the engine registers a cell (pykernel_runtime.begin_run).
            linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    elif mode == "oracle":
        workdir = argv[3]
        filenames = [os.path.join(workdir, "cell_%d.py" % n) for n in range(1, len(cells) + 1)]
        for source, filename in zip(cells, filenames):
            with open(filename, "w", encoding="utf-8", newline="") as f:
                f.write(source)
    else:
        raise SystemExit("unknown mode %r" % mode)

    with_recursion_headroom()
    exc = run_cells(cells, filenames)
    if exc is None:
        return 0
    check_first_frame(exc)
    if mode == "cells":
        text = pykernel_traceback.format_exception(exc, skip_frames=1)
        # backslashreplace: what sys.stderr does with lone surrogates
        with open(argv[3], "wb") as out:
            out.write(text.encode("utf-8", "backslashreplace"))
    else:
        exc.__traceback__ = exc.__traceback__.tb_next
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
        sys.stderr.flush()
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
