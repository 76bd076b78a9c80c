"""A context's ``sys.stdout`` / ``sys.stderr`` answer as python3.11's ``_io.TextIOWrapper`` on a
pipe does: the type's name in CPython's messages, ``repr``, what reading, seeking or pickling
raises, read-only attributes (docs/architecture.md, Output, lists what still differs).

The reference is ``python3.11 PROGRAM`` with stdout and stderr pipes and no ``PYTHON*``
variables (``PYTHONUNBUFFERED`` would make its stdout write-through); the same program runs as
a cell of a namespace context and of a process context.
"""

import os
import subprocess

import pytest

PYTHON311 = "/usr/bin/python3.11"

PROBES = r'''
import copy, io, pickle, sys

def probe(function):
    try:
        print("ok", repr(function()))
    except BaseException as error:
        print(type(error).__module__, type(error).__qualname__, error)

probe(lambda: (print >>sys.stderr, "x"))  # the Python-2 slip
probe(lambda: sys.stdout + 1)
probe(lambda: len(sys.stderr))
probe(lambda: sys.stdout.nosuch)
probe(lambda: repr(sys.stdout))
probe(lambda: str(sys.stderr))
probe(lambda: type(sys.stdout))
probe(lambda: (type(sys.stdout).__name__, type(sys.stdout).__qualname__, type(sys.stdout).__module__))
probe(lambda: sys.stdout.write(None))
probe(lambda: sys.stderr.write(1.5))
probe(lambda: sys.stdout.write("x", "y"))
probe(lambda: sys.stdout.write())
probe(lambda: sys.stdout.flush(1))
probe(lambda: (sys.stdout.write.__qualname__, sys.stdout.write.__self__ is sys.stdout))
probe(lambda: sys.stdout.read())
probe(lambda: sys.stdout.read(1))
probe(lambda: sys.stdout.readline())
probe(lambda: sys.stdout.readlines())
probe(lambda: next(sys.stdout))
probe(lambda: sys.stdout.seek(0))
probe(lambda: sys.stdout.seek(0, 2))
probe(lambda: sys.stdout.tell())
probe(lambda: sys.stdout.truncate())
probe(lambda: sys.stdout.truncate(0))
probe(lambda: (sys.stdout.readable(), sys.stdout.seekable(), sys.stdout.writable(), sys.stdout.closed))
probe(lambda: (sys.stdout.name, sys.stdout.mode, sys.stdout.encoding, sys.stdout.errors, sys.stdout.newlines))
probe(lambda: (sys.stdout.line_buffering, sys.stderr.line_buffering))
probe(lambda: (sys.stdout.write_through, sys.stderr.write_through))
for attribute in ("line_buffering", "write_through", "encoding", "buffer", "errors", "name", "newlines"):
    probe(lambda: setattr(sys.stdout, attribute, True))
    probe(lambda: delattr(sys.stderr, attribute))
probe(lambda: copy.copy(sys.stdout))
probe(lambda: copy.deepcopy(sys.stderr))
probe(lambda: pickle.dumps(sys.stdout))
probe(lambda: pickle.dumps(sys.stdout, 0))
probe(lambda: sys.stdout.__reduce__())
probe(lambda: repr(sys.stdout.buffer))
probe(lambda: sys.stdout.buffer.read())
probe(lambda: sys.stdout.buffer.seek(0))
probe(lambda: sys.stdout.buffer.write(None))
# Their classes are immutable, as python3's (a change would be every context's for good).
probe(lambda: setattr(type(sys.stdout), "write", print))
probe(lambda: delattr(type(sys.stderr), "flush"))
probe(lambda: setattr(type(sys.stdout), "nosuch", 1))
probe(lambda: setattr(sys.stdout, "__class__", io.StringIO))
sys.stdout.flush()
'''


def _python311_stdout(tmp_path):
    program = tmp_path / "probes.py"
    program.write_text(PROBES)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    done = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_standard_streams_answer_as_python3s_text_wrapper_on_a_pipe(kernel, tmp_path, isolation):
    expected = _python311_stdout(tmp_path)
    result = kernel.run_code(PROBES, context=kernel.create_context(isolation=isolation))
    assert result.error is None, result.error
    assert result.stdout.splitlines() == expected.splitlines()


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_print_chevron_error_names_the_stream_as_python3(kernel, tmp_path, isolation):
    source = 'import sys\nprint >>sys.stderr, "x"\n'
    program = tmp_path / "chevron.py"
    program.write_text(source)
    done = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True, timeout=60)
    result = kernel.run_code(source, context=kernel.create_context(isolation=isolation))
    assert (result.error.name, result.error.value) == (
        "TypeError",
        "unsupported operand type(s) for >>: 'builtin_function_or_method' and '_io.TextIOWrapper'. "
        'Did you mean "print(<message>, file=<output_stream>)"?')
    assert result.error.traceback == done.stderr.replace(str(program), "<cell-1>")


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_what_a_cell_sets_on_the_streams_lasts_for_its_run(kernel, isolation):
    """``sys.stdout.write = f`` (and ``sys.stderr``'s, ``sys.stdin``'s, their ``buffer``'s, a
    replaced ``sys.__stdout__``) works in the cell, as in python3, and is dropped at its end like a
    replaced ``sys.stdout``: every context shares the streams, so a capture helper that failed
    before it restored ``write`` silenced every context for good. ``reconfigure`` stays."""
    first = kernel.create_context(isolation=isolation)
    result = kernel.run_code(
        "import sys\n"
        "captured = []\n"
        "sys.stdout.write = captured.append\n"
        "sys.stderr.write = captured.append\n"
        "sys.stdout.buffer.write = captured.append\n"
        "sys.stdin.readline = lambda: 'answer'\n"
        "sys.stdin.buffer.read = lambda: b'bytes'\n"
        "sys.__stdout__ = sys.__stderr__ = None\n"
        "print('to the list')\n"
        "print('also', file=sys.stderr)\n"
        "sys.stdout.buffer.write(b'bytes')\n"
        "assert (sys.stdin.readline(), sys.stdin.buffer.read()) == ('answer', b'bytes')\n"
        "sys.stdout.reconfigure(errors='strict')\n"
        "raise RuntimeError('the helper failed before it put write back')\n", context=first)
    assert (result.stdout, result.stderr, result.error.name) == ("", "", "RuntimeError")
    contexts = [first] + ([kernel.create_context()] if isolation == "namespace" else [])
    for context in contexts:
        result = kernel.run_code(
            "import sys\n"
            "print('printed')\n"
            "sys.stdout.write('written\\n')\n"
            "sys.stdout.buffer.write(b'bytes\\n')\n"
            "print('to stderr', file=sys.stderr)\n"
            "print(sys.__stdout__ is sys.stdout, sys.__stderr__ is sys.stderr, sys.stdout.errors)\n"
            "print([vars(stream) for stream in (sys.stderr, sys.stdout.buffer, sys.stderr.buffer, sys.stdin, sys.stdin.buffer)])\n",
            context=context)
        assert result.error is None, result.error
        assert result.stdout == "printed\nwritten\nbytes\nTrue True strict\n[{}, {}, {}, {}, {}]\n"
        assert result.stderr == "to stderr\n"
    assert kernel.run_code("print(captured)", context=first).stdout == \
        "['to the list', '\\n', 'also', '\\n', b'bytes']\n"
