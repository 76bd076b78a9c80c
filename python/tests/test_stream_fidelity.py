"""A context's ``sys.stdout`` / ``sys.stderr`` answer as python3.11's ``_io.TextIOWrapper`` on a
pipe does: the type's name in CPython's messages, ``repr``, what reading, seeking or pickling
raises, read-only attributes (docs/architecture.md, Output, lists what still differs).

The reference is ``python3.11 PROGRAM`` with stdout and stderr pipes and no ``PYTHON*``
variables (``PYTHONUNBUFFERED`` would make its stdout write-through); the same program runs as
a cell of a namespace context and of a process context.
"""

import os
import re
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
probe(lambda: sys.stderr.truncate("x"))
for binary in (sys.stdout.buffer, sys.stderr.buffer):
    probe(lambda: binary.read(1))
    probe(lambda: binary.read1())
    probe(lambda: binary.readinto(bytearray(2)))
    probe(lambda: binary.readinto1(bytearray(2)))
    probe(lambda: binary.readline())
    probe(lambda: binary.tell())
    probe(lambda: binary.seek(0, 2))
    probe(lambda: binary.seek(0, 7))
    probe(lambda: binary.truncate())
    probe(lambda: binary.truncate(0))
    probe(lambda: binary.truncate("x"))
    probe(lambda: (binary.readable(), binary.seekable(), binary.writable(), isinstance(binary, io.BufferedIOBase)))
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


def test_pykernel_run_streams_answer_as_python3s(pykernel_bin, tmp_path):
    # A program run has python3's own streams (on the pipes it was given).
    expected = _python311_stdout(tmp_path)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    done = subprocess.run([pykernel_bin, "run", str(tmp_path / "probes.py")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert (done.returncode, done.stdout.splitlines()) == (0, expected.splitlines()), done.stderr


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
    before it restored ``write`` silenced every context for good. ``reconfigure`` stays, the
    context's own: another context keeps python3's defaults."""
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
    for context, errors in zip(contexts, ["strict", "surrogateescape"]):
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
        assert result.stdout == f"printed\nwritten\nbytes\nTrue True {errors}\n[{{}}, {{}}, {{}}, {{}}, {{}}]\n"
        assert result.stderr == "to stderr\n"
    assert kernel.run_code("print(captured)", context=first).stdout == \
        "['to the list', '\\n', 'also', '\\n', b'bytes']\n"


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_deleted_standard_stream_is_put_back_after_the_run(kernel, isolation):
    """``del sys.stdout`` (or any of the six) fails that run's next print as in python3 ("lost
    sys.stdout"); the streams are put back at its end. Every later run of every context answered
    an engine failure (the put-back read the deleted attribute)."""
    first = kernel.create_context(isolation=isolation)
    names = ["stdout", "stderr", "stdin", "__stdout__", "__stderr__", "__stdin__"]
    result = kernel.run_code("import sys\n" + "".join(f"del sys.{name}\n" for name in names) + "print('lost')\n",
                             context=first)
    assert (result.error.name, result.error.value) == ("RuntimeError", "lost sys.stdout")
    contexts = [first] + ([kernel.create_context()] if isolation == "namespace" else [])
    for context in contexts:
        result = kernel.run_code("import sys\nprint('back', file=sys.stdout)\nprint('err', file=sys.stderr)\n"
                                 "print(sys.__stdout__ is sys.stdout, sys.__stdin__ is sys.stdin)", context=context)
        assert result.error is None, result.error
        assert (result.stdout, result.stderr) == ("back\nTrue True\n", "err\n")


def _python311_output(tmp_path, source):
    """What python3.11 writes running ``source`` with pipes for stdout and stderr (no ``PYTHON*``
    variables), as the wire carries it: UTF-8, invalid bytes as U+FFFD."""
    program = tmp_path / "program.py"
    program.write_text(source)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    done = subprocess.run([PYTHON311, str(program)], capture_output=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")


NEWLINES = r'''
import sys

def probe(label, function):
    try:
        result = function()
        sys.stderr.write(f"{label}: ok {result!r}\n")
    except BaseException as error:
        sys.stderr.write(f"{label}: {type(error).__qualname__} {error}\n")

def state(stream):
    return (stream.encoding, stream.errors, stream.newlines, stream.line_buffering, stream.write_through, repr(stream))

for newline in ("\r\n", "", "\r", None, "\n"):
    sys.stdout.reconfigure(newline=newline)
    print("a")  # the native print's usual call
    print("b\nc", 1, end="|\n")
    probe(f"write {newline!r}", lambda: sys.stdout.write("x\ny\r\n"))
    probe(f"state {newline!r}", lambda: state(sys.stdout))
sys.stderr.reconfigure(newline="\r")
print("x\ny", file=sys.stderr)
sys.stderr.reconfigure(newline="\n")
sys.stdout.reconfigure(newline="\r\n")
sys.stdout.reconfigure(encoding="utf-16-le")  # the newline stays
print("kept")
sys.stdout.reconfigure(encoding="utf-8", errors="surrogateescape")
print("kept too")
for arguments in [dict(newline=1), dict(newline="x"), dict(newline="\r\n\r"), dict(encoding=1), dict(errors=1),
                  dict(encoding="nope"), dict(encoding="hex"), dict(newline="\r", encoding="nope"),
                  dict(line_buffering="x"), dict(line_buffering=2.5), dict(line_buffering=2**70), dict(write_through=[]),
                  dict(line_buffering=1, encoding="nope"), dict(line_buffering=2, write_through=-1),
                  dict(line_buffering=0), dict(errors="nope"), dict(newline="\ud800"), dict(newline="\n\0z"),
                  dict(encoding="latin-1", errors=None), dict(errors="strict"), dict(encoding="locale"),
                  dict(encoding="UTF-8", errors="surrogateescape", newline=None)]:
    probe(f"reconfigure {arguments!r}", lambda: (sys.stdout.reconfigure(**arguments), state(sys.stdout))[1])
    print("line")
sys.stderr.reconfigure(line_buffering=False, errors="strict")
probe("stderr", lambda: state(sys.stderr))
probe("stderr's surrogate", lambda: print("\udcff", file=sys.stderr))
'''


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_reconfigure_newline_translates_as_python3s(kernel, tmp_path, isolation):
    """``reconfigure(newline=...)`` of ``sys.stdout`` and ``sys.stderr``: "\\r\\n" and "\\r"
    replace each "\\n" written (``print``'s too), ``None``, ``""`` and ``"\\n"`` leave it; the
    arguments are checked, converted and applied as python3.11's ``reconfigure`` does (a newline
    set before an unknown encoding fails stays). Once ignored: everything came out with "\\n"."""
    expected = _python311_output(tmp_path, NEWLINES)
    result = kernel.run_code(NEWLINES, context=kernel.create_context(isolation=isolation))
    assert result.error is None, result.error
    assert (result.stdout, result.stderr) == expected
    assert "a\r\nb\r\nc 1|\r\n" in result.stdout and "x\ry\r" in result.stderr


ENCODERS = r'''
import sys
for encoding, errors in [("utf-8-sig", None), ("utf-16", None), ("utf-16-le", None), ("utf-16-be", "strict"),
                         ("utf-32", None), ("utf-32-be", None), ("latin-1", "replace"), ("cp1252", "xmlcharrefreplace"),
                         ("cp1252", "backslashreplace"), ("ascii", "ignore"), ("ascii", "namereplace"), ("U8", None),
                         ("latin-1", None), ("utf-8", "strict"), ("utf-8", "surrogatepass"), ("cp1252", "surrogateescape"),
                         ("punycode", None), ("utf-8-sig", None)]:
    sys.stdout.reconfigure(encoding=encoding, errors=errors)
    sys.stderr.write(f"{encoding} {errors}: {sys.stdout.encoding!r} {sys.stdout.errors!r} {sys.stdout!r}\n")
    for text in ["u", "v\n", "\u00e9\u20ac\u0416\n", "\udcff\n", "\ud800x\n", "\U0001F600\n"]:
        try:
            sys.stderr.write(f" wrote {sys.stdout.write(text)}\n")
        except UnicodeEncodeError as error:
            sys.stderr.write(f" {error}\n")
    print("p", "q", sep="\n")
    print("w")
sys.stdout.reconfigure(encoding="utf-8", errors="surrogateescape")
sys.stderr.reconfigure(encoding="utf-8-sig")
print("to stderr", file=sys.stderr)
print("again", file=sys.stderr)
sys.stderr.reconfigure(errors="strict")  # a new encoder: its mark again
print("last", file=sys.stderr)
'''


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_reconfigure_encodes_as_python3s_encoder_on_a_pipe(kernel, tmp_path, isolation):
    """A codec that writes a byte order mark writes it as python3's ``TextIOWrapper`` on a pipe
    does: ``utf-8-sig`` once per encoder (each ``reconfigure`` of the encoding, error handler or
    newline makes one), ``utf-16`` and ``utf-32`` never (their fast encoders skip it when the
    stream cannot tell it is at its start; native byte order). Other codecs and error handlers
    write python3's bytes. Once: a mark before every write (a ``print`` is two)."""
    expected = _python311_output(tmp_path, ENCODERS)
    result = kernel.run_code(ENCODERS, context=kernel.create_context(isolation=isolation))
    assert result.error is None, result.error
    assert (result.stdout, result.stderr) == expected
    assert result.stdout.count("\ufeff") == 2 and result.stderr.count("\ufeff") == 2


# Writes a reconfigured stream cannot encode. python3's ``TextIOWrapper`` encodes ascii, latin-1,
# UTF-8 and the UTF-16/32 codecs with C encoders of its own (no frame of the codec's module in the
# traceback); other codecs with their incremental encoder (``cp1252``: its ``encode`` frame shows).
UNENCODABLE = {
    "ascii": 'import sys\nsys.stdout.reconfigure(encoding="ascii")\nprint(chr(0x4e2d))\n',
    "latin-1": 'import sys\nsys.stdout.reconfigure(encoding="latin-1")\nprint(chr(0x4e2d))\n',
    "utf-8-strict": 'import sys\nsys.stdout.reconfigure(encoding="utf-8", errors="strict")\nprint(chr(0xd800))\n',
    "utf-16-le": 'import sys\nsys.stdout.reconfigure(encoding="utf-16-le")\nprint(chr(0xd800))\n',
    "utf-32-be": 'import sys\nsys.stdout.reconfigure(encoding="utf-32-be")\nprint(chr(0xd800))\n',
    "unknown-error-handler": 'import sys\nsys.stdout.reconfigure(encoding="utf-8", errors="bogus")\nprint(chr(0xd800))\n',
    "cp1252": 'import sys\nsys.stdout.reconfigure(encoding="cp1252")\nprint(chr(0x4e2d))\n',
    "stderr-warning": 'import sys, warnings\nsys.stderr.reconfigure(encoding="ascii")\nwarnings.warn(chr(0x4e2d))\n',
}


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_an_unencodable_write_to_a_reconfigured_stream_has_python3s_traceback(kernel, tmp_path, isolation):
    """The engine's streams encoded every reconfigured encoding with the codec's incremental
    encoder, whose Python frame (``encodings/ascii.py``, line 22, in encode) python3's traceback
    does not have for the encodings its ``TextIOWrapper`` encodes in C."""
    program = tmp_path / "program.py"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    for name, code in UNENCODABLE.items():
        program.write_text(code)
        done = subprocess.run([PYTHON311, str(program)], capture_output=True, env=env, timeout=60)
        expected = done.stderr.decode("utf-8", "replace").replace(str(program), "<cell-1>")
        error = kernel.run_code(code, context=kernel.create_context(isolation=isolation)).error
        assert error is not None, name
        # A warning's text starts with its file's name: the position of its character differs.
        position = re.compile(r"in position \d+")
        assert position.sub("in position N", error.traceback) == position.sub("in position N", expected), name


FORKED = r'''
import os, sys
os.environ.pop("PYTHONUNBUFFERED", None)
sys.stdout.reconfigure(encoding="ascii", errors="replace", newline="\r\n")
sys.stderr.reconfigure(errors="strict", newline="\r")
print("parent \u00e9")
sys.stdout.flush()
pid = os.fork()
if pid == 0:
    print("child \u00e9", sys.stdout.encoding, sys.stdout.errors, sys.stdout.line_buffering, sys.stderr.line_buffering)
    try:
        print("\udcff", file=sys.stderr)
    except UnicodeEncodeError:
        print("raised", file=sys.stderr)
    sys.stdout.flush()
    os._exit(0)
os.waitpid(pid, 0)
print("done")
'''


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_forked_child_writes_with_what_reconfigure_set(kernel, tmp_path, isolation):
    """A child forked after ``reconfigure`` writes with the forking context's encoding, error
    handler and newline, as python3's child, which inherits its parent's stream."""
    expected = _python311_output(tmp_path, FORKED)
    result = kernel.run_code(FORKED, context=kernel.create_context(isolation=isolation))
    assert result.error is None, result.error
    assert (result.stdout, result.stderr) == expected


def test_reconfigure_is_the_contexts_own(kernel, tmp_path):
    """What one namespace context's ``reconfigure`` sets (``sys.stdout``, ``sys.stderr``,
    ``sys.stdin``) is that context's, as if each were a process: the others keep python3's
    defaults, its threads write with its settings whichever context runs, and they go with the
    context. Once: one context's ``encoding="ascii"`` made ``print("café")`` fail in every
    other, still after it was deleted."""
    defaults = _python311_output(tmp_path, "import sys\nfor s in (sys.stdout, sys.stderr, sys.stdin):\n"
                                           "    print(s.encoding, s.errors, s.line_buffering, s.write_through, repr(s))\n")[0]
    show = "for s in (sys.stdout, sys.stderr, sys.stdin):\n    print(s.encoding, s.errors, s.line_buffering, s.write_through, repr(s))\n"
    a, b = kernel.create_context(), kernel.create_context()
    result = kernel.run_code(
        "import builtins, sys, threading\n"
        "sys.stdout.reconfigure(encoding='ascii', errors='replace', newline='\\r\\n')\n"
        "sys.stderr.reconfigure(newline='\\r', line_buffering=False)\n"
        "sys.stdin.reconfigure(encoding='latin-1')\n"
        "go, done = threading.Event(), threading.Event()\n"
        "builtins.a_events = go, done\n"
        "def later():\n"
        "    go.wait()\n"
        "    print('thread of a \\u00e9', sys.stdout.encoding, sys.stdout.errors)\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    sys.stdout.write('written\\n')\n"
        "    done.set()\n"
        "threading.Thread(target=later).start()\n"
        "print('a \\u00e9', ascii(input()))\n", context=a, on_input=lambda prompt, password: "\u00e9")
    assert (result.error, result.stdout, result.stderr) == (None, "a ? '\\xc3\\xa9'\r\n", "")
    # b runs while a's thread writes (into a's next run, with a's settings), and starts one too.
    result = kernel.run_code(
        "import builtins, sys, threading\n"
        "go, done = builtins.a_events\n"
        "go.set()\n"
        "done.wait()\n"
        "print('b \\u00e9', ascii(input()))\n" + show +
        "b_go, b_done = threading.Event(), threading.Event()\n"
        "builtins.b_events = b_go, b_done\n"
        "def later():\n"
        "    b_go.wait()\n"
        "    print('thread of b \\u00e9', sys.stdout.encoding)\n"
        "    b_done.set()\n"
        "threading.Thread(target=later).start()\n", context=b, on_input=lambda prompt, password: "\u00e9")
    assert result.error is None, result.error
    assert result.stdout == "b \u00e9 '\\xe9'\n" + defaults
    result = kernel.run_code(
        "import builtins, sys\nb_go, b_done = builtins.b_events\nb_go.set()\nb_done.wait()\nprint('a again \\u00e9')\n"
        "print(sys.stdout.encoding, sys.stderr.newlines, sys.stderr.line_buffering, sys.stdin.encoding)\n", context=a)
    assert (result.error, result.stdout, result.stderr) == (
        None, "thread of a ? ascii replace\r\nwritten\r\na again ?\r\nascii None False latin-1\r\n", "to stderr\r")
    assert kernel.run_code("print('b \\u00e9')", context=b).stdout == "thread of b \u00e9 utf-8\nb \u00e9\n"
    kernel.delete_context(a)
    for context in (None, b, kernel.create_context()):
        result = kernel.run_code("import sys\nprint('caf\\u00e9')\n" + show, context=context)
        assert (result.error, result.stdout) == (None, "caf\u00e9\n" + defaults)


def test_what_a_preloaded_module_reconfigures_is_every_contexts(pykernel_bin, tmp_path):
    """``--preload`` imports in a context of its own, deleted afterwards (or, for process
    contexts, in the fork server): what its modules' ``reconfigure`` set becomes the streams'
    defaults, every context's, as in python3 a module imported at start sets the process's."""
    from pykernel import PyKernel

    (tmp_path / "reconfigures.py").write_text("import sys\nsys.stdout.reconfigure(errors='strict', newline='\\r\\n')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    check = "import sys\nprint(sys.stdout.errors)"
    with PyKernel(pykernel_bin, args=["--preload", "reconfigures"], env=env) as kernel:
        for isolation in (None, "namespace", "process"):
            context = None if isolation is None else kernel.create_context(isolation=isolation)
            assert kernel.run_code(check, context=context).stdout == "strict\r\n"
