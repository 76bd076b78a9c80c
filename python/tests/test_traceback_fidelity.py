"""pykernel_traceback.format_exception must print what ``python3.11 file.py`` prints.

For every program in traceback_corpus/ the reference is produced by CPython 3.11 itself and
compared byte for byte with pykernel_traceback's text for the same program run as PyKernel
cells.  Both sides run in subprocesses of /usr/bin/python3.11 (the interpreter PyKernel
embeds, Debian's 3.11.2), so the Python running pytest does not matter.

Two printers are checked: the Python port (pykernel_traceback, in a plain python3.11 run by
traceback_driver.py) and the engine itself -- every corpus program also runs through
``pykernel run prog.py`` and is compared with ``python3.11 prog.py`` (stdout, stderr, exit
status), and the random programs run in contexts of a real ``pykernel serve``, so the native
"Did you mean" search and the engine's error records are held to CPython's text too.

References:

* one cell (the usual case): ``python3.11 prog.py`` run in a temp dir, its stderr with the
  path of prog.py replaced by ``<cell-1>``;
* several cells (``# %%`` lines) -- cell 1 defines, cell 2 calls: a concatenated prog.py would
  number cell 2's lines differently and name one file for both, so the exact reference is
  CPython's own printer (sys.__excepthook__, which ``python3.11 prog.py`` calls) on the same
  cells compiled from real files cell_1.py, cell_2.py (traceback_driver.py ``oracle``).  The
  concatenated ``python3.11 prog.py`` run is still compared, with file names and line
  numbers masked;
* SystemExit (``# reference: excepthook`` in the program): ``python3.11 prog.py`` prints
  nothing for SystemExit(int) and just the code for SystemExit(str); the kernel shows the
  exception like any other, so the reference is sys.__excepthook__ as above, and the
  interpreter's own output is checked separately.
"""

import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from pykernel import PyKernelTimeoutError

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "traceback_corpus")
DRIVER = os.path.join(HERE, "traceback_driver.py")
PYTHON = "/usr/bin/python3.11"

sys.path.insert(0, HERE)
from traceback_driver import split_cells  # noqa: E402  (pure function, any Python 3)

PROGRAMS = sorted(name for name in os.listdir(CORPUS) if name.endswith(".py"))



def test_reference_interpreter_is_installed():
    # Never skipped: without the reference nothing here means anything (python3-dev brings it).
    assert os.path.exists(PYTHON), PYTHON + " (Debian's python3.11, which PyKernel embeds) is missing"


def _env():
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(PYTHONHASHSEED="0", PYTHONUTF8="1", PYTHONDONTWRITEBYTECODE="1",
               LC_ALL="C.UTF-8")
    return env


def _run(args, cwd):
    return subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, timeout=120)


def _text(data):
    return data.decode("utf-8", "surrogateescape")


def _read(name):
    with open(os.path.join(CORPUS, name), encoding="utf-8", newline="") as f:
        return f.read()


@functools.lru_cache(maxsize=None)
def _python3_run(name):
    """``python3.11 prog.py`` of the corpus program in a temp dir of its own, run once for the
    module (the corpus tests compare with it in two ways): (stdout, stderr, returncode, the
    directory's path)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        shutil.copyfile(os.path.join(CORPUS, name), os.path.join(tmp, "prog.py"))
        proc = _run([PYTHON, "prog.py"], tmp)
        return proc.stdout, proc.stderr, proc.returncode, tmp


def interpreter_output(name):
    """(stderr, returncode) of ``python3.11 prog.py`` with prog.py's path shown as <cell-1>."""
    _, stderr, returncode, tmp = _python3_run(name)
    return _text(stderr).replace(os.path.join(tmp, "prog.py"), "<cell-1>"), returncode


def python3_file_output(name):
    """(stdout, stderr, exit status) of ``python3.11 prog.py`` with its directory shown as <tmp>."""
    stdout, stderr, returncode, tmp = _python3_run(name)
    return _text(stdout), _text(stderr).replace(tmp, "<tmp>"), returncode


@functools.lru_cache(maxsize=None)
def oracle_output(name):
    """sys.__excepthook__'s text for the cells compiled from real files, paths as <cell-N>."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        proc = _run([PYTHON, DRIVER, "oracle", os.path.join(CORPUS, name), tmp], tmp)
        return re.sub(r"%s/cell_(\d+)\.py" % re.escape(tmp), r"<cell-\1>", _text(proc.stderr))


@functools.lru_cache(maxsize=None)
def kernel_output(name):
    """What a kernel user sees on stderr: whatever the run wrote there (compile-time
    SyntaxWarnings, like python3.11 prints them) followed by
    pykernel_traceback.format_exception's text for the program run as cells."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "traceback.txt")
        proc = _run([PYTHON, DRIVER, "cells", os.path.join(CORPUS, name), out], tmp)
        assert proc.returncode == 1 and os.path.exists(out), _text(proc.stderr)
        with open(out, "rb") as f:
            return _text(proc.stderr) + _text(f.read())


def _run_file(args, source_name):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        shutil.copyfile(os.path.join(CORPUS, source_name), os.path.join(tmp, "prog.py"))
        proc = _run(args + ["prog.py"], tmp)
        return _text(proc.stdout), _text(proc.stderr).replace(tmp, "<tmp>"), proc.returncode


@pytest.fixture(scope="module")
def corpus_references():
    """Runs every corpus program's references once for the module, four programs at a time:
    ``python3.11 prog.py``, the port's text of its cells (kernel_output) and, for the programs
    that need it, the oracle (each was run again by every test comparing with it, one after
    the other). A run that fails here is left for the test that needs it to run and report."""
    from concurrent.futures import ThreadPoolExecutor

    def references(name):
        for reference in (_python3_run, kernel_output, oracle_output):
            if reference is oracle_output and reference_kind(_read(name)) == "interpreter":
                continue
            try:
                reference(name)
            except Exception:  # noqa: BLE001 -- not cached: the test that calls it fails with it
                pass

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(references, PROGRAMS))


@pytest.fixture(scope="module")
def engine_and_interpreter(pykernel_bin, corpus_references):
    """For every corpus program: (pykernel run prog.py, python3.11 prog.py), each as
    (stdout, stderr, exit status), computed in parallel once for the module."""
    from concurrent.futures import ThreadPoolExecutor

    def both(name):
        return _run_file([pykernel_bin, "run"], name), python3_file_output(name)

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(PROGRAMS, pool.map(both, PROGRAMS)))


@pytest.mark.parametrize("name", PROGRAMS)
def test_pykernel_run_prints_what_python3_prints(name, engine_and_interpreter):
    # The whole program as one file, through the engine's native printer and suggestions.
    engine, interpreter = engine_and_interpreter[name]
    assert engine == interpreter


def mask_locations(text):
    return re.sub(r'File "[^"]*", line \d+', 'File "?", line ?', text)


def reference_kind(source):
    if re.search(r"^# reference: excepthook$", source, re.M):
        return "excepthook"
    if len(split_cells(source)) > 1:
        return "cells"
    return "interpreter"


def expected_output(name):
    source = _read(name)
    kind = reference_kind(source)
    if kind == "interpreter":
        return interpreter_output(name)[0]
    return oracle_output(name)


def test_corpus_is_big_enough():
    assert len(PROGRAMS) >= 60


@pytest.mark.parametrize("name", PROGRAMS)
def test_traceback_fidelity(name, corpus_references):
    expected = expected_output(name)
    assert expected, "the reference printed nothing"
    assert kernel_output(name) == expected


@pytest.mark.parametrize("name", [n for n in PROGRAMS if reference_kind(_read(n)) == "cells"])
def test_multi_cell_matches_concatenated_file(name, corpus_references):
    # Same frames, source lines, carets and messages as one file holding all cells; only file
    # names and line numbers may differ.
    stderr, _ = interpreter_output(name)
    assert mask_locations(kernel_output(name)) == mask_locations(stderr)


@pytest.mark.parametrize("name", [n for n in PROGRAMS if reference_kind(_read(n)) == "excepthook"])
def test_system_exit_is_silent_in_the_interpreter(name, corpus_references):
    # Documents why these programs use sys.__excepthook__ as the reference.
    stderr, returncode = interpreter_output(name)
    assert "Traceback" not in stderr
    assert kernel_output(name).startswith("Traceback (most recent call last):\n")


def test_exception_name_and_value():
    script = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from pykernel_traceback import exception_name, exception_value
class Local(Exception):
    def __str__(self):
        raise RuntimeError
class Outer:
    class Inner(Exception):
        pass
try:
    json.loads("{")
except ValueError as exc:
    assert exception_name(exc) == "json.decoder.JSONDecodeError", exception_name(exc)
    assert exception_value(exc).startswith("Expecting property name")
assert exception_name(KeyError("k")) == "KeyError" and exception_value(KeyError("k")) == "'k'"
assert exception_name(Local()) == "Local" and exception_value(Local()) == "<exception str() failed>"
assert exception_name(Outer.Inner()) == "Outer.Inner"
Outer.Inner.__module__ = "pkg.mod"
assert exception_name(Outer.Inner()) == "pkg.mod.Outer.Inner"
'''
    proc = _run([PYTHON, "-c", script, os.path.join(os.path.dirname(HERE), "runtime")], HERE)
    assert proc.returncode == 0, _text(proc.stderr)


# Random programs: the corpus is hand-written; these cover what no one thought of.

_PRELUDE = ("a = 1\nb = 't'\nlst = [1, 2]\nd = {'k': 0}\ns = 'str'\nn = None\nü = 2\n名 = '名前'\n"
            "class O:\n    def __repr__(self):\n        return 'O()'\nobj = O()\n"
            "def f(x): return x / 0\ndef g(x, y): return x + y\n")
_ATOMS = ["a", "b", "lst", "d", "s", "n", "obj", "None", "0", "'x'", "ü", "名", "(a)", "lst[9]",
          "d['k']", "f(a)", "obj.zz", "[1]", "{}", "1.5"]
_OPS = ["+", "-", "*", "/", "//", "%", "**", "@", "<<", "&", " + ", "  /  ", "\t*\t", " - "]


def _random_expression(rng, depth=0):
    r = rng.random()
    if depth > 2 or r < 0.3:
        return rng.choice(_ATOMS)
    sub = lambda: _random_expression(rng, depth + 1)  # noqa: E731
    if r < 0.6:
        return sub() + rng.choice(_OPS) + sub()
    if r < 0.7:
        return "%s[%s]" % (sub(), sub())
    if r < 0.8:
        return "(%s)" % sub()
    if r < 0.9:
        return "g(%s,\n   %s)" % (sub(), sub())
    return sub() + ".real"


def _random_runtime_program(rng):
    body = _random_expression(rng)
    line = rng.choice(["x = %s", "def h():\n    return %s   \nh()", "résumé = [%s for _ in [1]]",
                       "if True:\n\tz = %s  # c", "print(%s)"]) % body
    return _PRELUDE + line + "\n"


_SYNTAX_BASES = [
    "def prüfe(größe):\n    if größe > 1:\n        return [größe, (1, 2), {'k': 'é'}]\n"
    "    return None\n",
    "class Ä:\n    def m(self, x):\n        for i in range(x):\n            yield f'{i}名'\n\n"
    "values = list(Ä().m(3))\n",
    "try:\n    x = 1\nexcept ValueError as e:\n    pass\nwhile x < 3:\n    x += 1\nprint(x)\n",
    "data = {\n    'a': [1, 2, 3],\n    'b': lambda y: y ** 2,\n}\nresult = data['b'](4)\n",
    "@decorator(arg='é')\ndef f(*args, **kw):\n\treturn {k: v for k, v in kw.items() if v}\n",
    "x = " + " + ".join("'名%d'" % i for i in range(120)) + "\nprint(x)\n",
]
_SYNTAX_TOKENS = [":", "(", ")", "[", "]", "{", "}", ",", "=", "  ", "\t", "\n", "é", "'", '"',
                  "if ", "return ", "lambda", "    ", "**", "f'{", "\\", "nonlocal x\n", "$", "×",
                  'print "x"', "else:", ":=", "0x", "async "]


def _random_syntax_error_program(rng):
    source = rng.choice(_SYNTAX_BASES)
    for _ in range(rng.randint(1, 3)):
        r, at = rng.random(), rng.randrange(len(source) + 1)
        if r < 0.4:
            source = source[:at] + rng.choice(_SYNTAX_TOKENS) + source[at:]
        elif r < 0.7:
            source = source[:at] + source[at + rng.randint(1, 4):]
        elif r < 0.85:
            source = source[:at]  # cut short: errors at the end of input
        else:
            source = source.rstrip("\n")
    return source


def _batch(sources):
    import json
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        with open(os.path.join(tmp, "in.json"), "w", encoding="utf-8") as f:
            json.dump(sources, f)
        os.mkdir(os.path.join(tmp, "work"))
        proc = _run([PYTHON, DRIVER, "batch", os.path.join(tmp, "in.json"),
                     os.path.join(tmp, "out.json"), os.path.join(tmp, "work")], tmp)
        assert proc.returncode == 0, _text(proc.stderr)
        with open(os.path.join(tmp, "out.json"), encoding="utf-8") as f:
            return json.load(f)


def test_random_runtime_errors():
    import random
    rng = random.Random(20240611)
    sources = [_random_runtime_program(rng) for _ in range(300)]
    mismatches = [(source, kernel, reference)
                  for source, (kernel, reference) in zip(sources, _batch(sources))
                  if kernel != reference]
    assert not mismatches, mismatches[:3]


def test_random_runtime_errors_in_served_contexts(kernel):
    # The same kind of programs through the engine: each in a fresh context of a real
    # `pykernel serve`, so its first run is <cell-1> like the reference's file.
    import random
    rng = random.Random(20240612)
    sources = [_random_runtime_program(rng) for _ in range(150)]
    references = [reference for _, reference in _batch(sources)]
    _expect_served_tracebacks(kernel, sources, references)


# Segments whose caret anchors the engine reads without parsing them (names, attributes,
# decimal integers, plain strings, subscripts and chains of binary operators, with spaces, tabs and form feeds
# between tokens), mixed with their near misses that it must leave to the parser (unary
# operators, parentheses, calls, other literals, comparisons, keywords, deep brackets).

_SEGMENT_PRELUDE = ("a = 1\nz = 0\ns = 't'\nlst = [1, 2]\nd = {'k': 0, 1: 0}\nn = None\nx1 = 2\n_q = 3\n"
                    "class O:\n    pass\no = O()\no.n = 0\no.lst = [0]\no.o = o\nmatch = 5\ne = {0: 0}\n"
                    "def f(v): return v\n")
_SEGMENT_ATOMS = ["a", "z", "s", "lst", "d", "n", "x1", "_q", "o.n", "o . lst", "o.o.n", "0", "1", "00", "10", "2",
                  "'k'", '"x"', "''", "'#'", '"it\'s"']
_SEGMENT_NEAR = ["(a)", "-a", "~z", "f(a)", "1.5", "1 .real", "0x0", "1_0", "True", "None", "match", "lst[-1]",
                 "lst[0:1]", "lst[a,]", "not a", "a if a else z", "[a]", "a.real", "b'k'", "f'{a}'", "'''k'''",
                 "'\\n'", "'a' 'b'", "'k'[0]", "''''"]
_SEGMENT_OPERATORS = ["+", "-", "*", "/", "//", "%", "@", "**", "<<", ">>", "&", "|", "^", "<", "=="]
_SEGMENT_SPACES = ["", "", "", " ", " ", "  ", "\t", "\f"]


def _random_segment(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.35:
        return rng.choice(_SEGMENT_NEAR if rng.random() < 0.1 else _SEGMENT_ATOMS)
    space = lambda: rng.choice(_SEGMENT_SPACES)  # noqa: E731
    if r < 0.75:
        return _random_segment(rng, depth + 1) + space() + rng.choice(_SEGMENT_OPERATORS) + space() \
            + _random_segment(rng, depth + 1)
    value = rng.choice(["lst", "d", "o.lst", "s", "n", "a"])
    return value + space() + "[" + space() + _random_segment(rng, depth + 1) + space() + "]" \
        + ("" if rng.random() < 0.8 else "[" + rng.choice(_SEGMENT_ATOMS) + "]")


def _random_segment_program(rng):
    line = rng.choice(["%s", "x = %s", "x = %s  # c", "def h():\n    return %s\nh()", "if True:\n\ty = [%s]",
                       "print(%s)", "v = 1 + (%s)"]) % _random_segment(rng)
    if rng.random() < 0.05:
        depth = rng.randint(6, 12)  # around the depth the engine reads without a parser
        line = "x = n" + "[e" * depth + "[z" + "]" * (depth + 1)
    return _SEGMENT_PRELUDE + line + "\n"


def test_random_simple_segments_in_served_contexts(kernel):
    import random
    rng = random.Random(20261204)
    sources = [_random_segment_program(rng) for _ in range(400)]
    references = [reference for _, reference in _batch(sources)]
    assert sum(reference is not None and "~" in reference for reference in references) > 100
    _expect_served_tracebacks(kernel, sources, references)


def _expect_served_tracebacks(kernel, sources, references):
    """Runs each source in a fresh context of the served kernel (its first run is <cell-1>, like
    the reference's file) and requires python3.11's traceback (or none)."""
    mismatches = []
    for source, reference in zip(sources, references):
        context = kernel.create_context()
        result = kernel.run_code(source, context=context)
        kernel.delete_context(context)
        traceback = result.error.traceback if result.error else None
        if traceback != reference:
            mismatches.append((source, traceback, reference))
    assert not mismatches, mismatches[:3]


def _without_compile_warnings(text):
    # python3.11 prog.py prints the compiler's SyntaxWarnings first; the kernel's compile
    # step prints them on its own stream.
    return re.sub(r"(?m)^<cell-1>:\d+: SyntaxWarning: .*\n(?:  (?!File ).*\n)?", "", text)


def test_random_syntax_errors():
    import random
    from concurrent.futures import ThreadPoolExecutor
    rng = random.Random(7)
    sources = []
    while len(sources) < 200:
        source = _random_syntax_error_program(rng)
        if "\0" not in source:
            sources.append(source)
    kernels = [kernel for kernel, _ in _batch(sources)]
    cases = [(source, kernel) for source, kernel in zip(sources, kernels)
             if kernel is not None and "Traceback" not in kernel]   # compile errors only

    def interpreter(source):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = os.path.realpath(tmp)
            path = os.path.join(tmp, "prog.py")
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(source)
            stderr = _text(_run([PYTHON, "prog.py"], tmp).stderr)
            return _without_compile_warnings(stderr.replace(path, "<cell-1>"))

    with ThreadPoolExecutor(8) as pool:
        references = list(pool.map(interpreter, [source for source, _ in cases]))
    assert len(cases) > 100
    mismatches = [(source, kernel, reference)
                  for (source, kernel), reference in zip(cases, references)
                  if kernel != reference]
    assert not mismatches, mismatches[:3]


def test_corpus_in_served_contexts(pykernel_bin, corpus_references):
    # Every corpus program as cells of a fresh `pykernel serve` (programs change process-wide
    # state such as sys.tracebacklimit): the error record the engine makes (natively for the
    # common case, with the Python port otherwise) is the Python port's text, after what the
    # runs wrote on stderr (compile warnings). Starting ~190 servers is nearly all of the time:
    # four programs at a time, each still alone in its own server (no run has a deadline).
    from concurrent.futures import ThreadPoolExecutor

    from pykernel import PyKernel

    def mismatch(name):
        cells = split_cells(_read(name))
        kernel = PyKernel(pykernel_bin)
        try:
            results = [kernel.run_code(cell) for cell in cells]
        finally:
            kernel.close()
        last = results[-1]
        if last.error is None:
            return name, "no error record", last.status
        shown = "".join(result.stderr for result in results) + last.error.traceback
        expected = kernel_output(name)
        return (name, shown, expected) if shown != expected else None

    with ThreadPoolExecutor(4) as pool:
        mismatches = [found for found in pool.map(mismatch, PROGRAMS) if found is not None]
    assert not mismatches, mismatches[:3]


_RECORDING_IMPORT = (
    "import builtins\noriginal = builtins.__import__\n\n\n"
    "def recording(name, globals=None, locals=None, fromlist=(), level=0):\n"
    "    shown = sorted(globals) if isinstance(globals, dict) else globals\n"
    "    print('import', name, shown, globals is locals, fromlist, level)\n"
    "    return original(name, globals, locals, fromlist, level)\n\n\n"
    "def fail():\n    raise ValueError('x')\n\n\n"
    "builtins.__import__ = recording\nfail()\n")


@pytest.mark.parametrize("isolation", [None, "process"])
def test_a_replaced_import_function_is_called_as_python3s_printer_calls_it(kernel, pykernel_bin, tmp_path, isolation):
    # python3's printer imports io through builtins.__import__ before each source line it shows
    # (PyImport_Import, with no frame under it: globals {"__builtins__": builtins}); the engine
    # imports nothing else through it, for a cell's error record nor in `pykernel run`.
    (tmp_path / "prog.py").write_text(_RECORDING_IMPORT)
    reference = _run([PYTHON, "prog.py"], str(tmp_path))
    calls = "import io ['__builtins__'] True [] 0\n"
    assert _text(reference.stdout) == calls * 2
    ran = kernel.run_code(_RECORDING_IMPORT, context=kernel.create_context(isolation=isolation))
    assert (ran.stdout, ran.error.traceback) == (
        _text(reference.stdout), _text(reference.stderr).replace(str(tmp_path / "prog.py"), "<cell-1>"))
    program = _run([pykernel_bin, "run", "prog.py"], str(tmp_path))
    assert (program.stdout, program.stderr, program.returncode) == (reference.stdout, reference.stderr, 1)


# Built-in names the engine's own Python code uses, each rebound to None by the code.
_REBOUND_BUILTINS = ["BaseException", "Exception", "getattr", "isinstance", "len", "str", "type"]
# Programs that fail after the rebinding (its lines first: _REBINDING's count, kept as blank
# lines where a cell runs them without it): a built-in exception the engine describes
# natively; a chained NameError with a suggestion and a caret line, and an exception group,
# that the Python port prints.
_REBINDING = "import builtins\nbuiltins.{name} = None\n"
_FAILING_AFTER_REBINDING = (
    "def fail():\n    raise ValueError(1)\nfail()\n",
    "def parse(text):\n    return int(text)\ntry:\n    parse('x')\nexcept ValueError:\n    totl = 1\n    total + 1\n",
    "error = ValueError('v')\nerror.add_note('note')\nraise ExceptionGroup('group', [error, KeyError('k')])\n",
)


@pytest.mark.parametrize("isolation", [None, "process"])
@pytest.mark.parametrize("name", _REBOUND_BUILTINS)
def test_rebound_builtins_leave_tracebacks_as_python3_prints_them(kernel, pykernel_bin, tmp_path, isolation, name):
    # python3 prints tracebacks with C code, which never looks up builtins by name; the engine's
    # Python modules have their own copy of builtins, taken at start (an error record read
    # "SystemError: PyKernel engine failure: TypeError: catching classes that do not inherit
    # from BaseException is not allowed", in every namespace context).
    rebinding = _REBINDING.format(name=name)
    blank = "\n" * rebinding.count("\n")
    context, other = (kernel.create_context(isolation=isolation) for _ in range(2))
    kernel.run_code(f"import builtins\nsaved = builtins.{name}", context=context)
    try:
        for failing in _FAILING_AFTER_REBINDING:
            program = tmp_path / "prog.py"
            program.write_text(rebinding + failing)
            reference = _run([PYTHON, "prog.py"], str(tmp_path))
            expected = _text(reference.stderr).replace(str(program), "<cell-{}>")
            assert reference.returncode == 1 and "Traceback (most recent call last):" in expected, expected
            shown = []
            for where, code in ((context, rebinding + failing), (context, blank + failing), (other, blank + failing)):
                ran = kernel.run_code(code, context=where)
                shown.append(ran.error.traceback.replace(f"<cell-{ran.execution_count}>", "<cell-{}>"))
            assert shown == [expected] * 3, failing
            if isolation is None:
                run = _run([pykernel_bin, "run", "prog.py"], str(tmp_path))
                assert (run.stdout, run.stderr, run.returncode) == (reference.stdout, reference.stderr, 1)
    finally:
        kernel.run_code(f"builtins.{name} = saved", context=context)
    # The code's own builtins are the module, as python3's (the engine's copy is its own).
    seen = kernel.run_code(f"import builtins\nprint(__builtins__ is builtins, builtins.{name} is saved)", context=context)
    assert seen.stdout == "True True\n"


def test_library_frames_show_the_files_current_lines(kernel, tmp_path):
    """A frame in a real file shows that file's line as it is when the error is printed, as
    python3 does: the lines kept from an earlier traceback are not shown once the file changed
    (here to the same size, so only its modification time tells), nor for another file of the
    same name in another working directory."""
    module = tmp_path / "lib_mod.py"
    module.write_text("def f():\n    raise ValueError('one')\n")
    context = kernel.create_context(cwd=str(tmp_path))
    kernel.run_code("import lib_mod", context=context)
    first = kernel.run_code("lib_mod.f()", context=context).error.traceback
    assert "    raise ValueError('one')\n" in first
    module.write_text("def f():\n    raise ValueError('two')\n")
    os.utime(module, ns=(1_000_000_000, 1_000_000_000))
    second = kernel.run_code("lib_mod.f()", context=context).error.traceback
    assert "    raise ValueError('two')\n" in second and "'one'" not in second
    # Files named relatively ("rel.py", compiled so): each context reads its own cwd's, even
    # with the same size and modification time.
    texts = []
    for cwd, letter in ((tmp_path / "a", "a"), (tmp_path / "b", "b")):
        cwd.mkdir()
        (cwd / "rel.py").write_text(f"x = 1\nraise KeyError('{letter}')\n")
        os.utime(cwd / "rel.py", ns=(1_000_000_000, 1_000_000_000))
        here = kernel.create_context(cwd=str(cwd))
        texts.append(kernel.run_code("exec(compile(open('rel.py').read(), 'rel.py', 'exec'))", context=here).error.traceback)
    assert "    raise KeyError('a')\n" in texts[0] and "    raise KeyError('b')\n" in texts[1]


@pytest.mark.parametrize("isolation", [None, "process"])
def test_a_saved_exception_keeps_its_cells_source_until_it_is_freed(kernel, isolation):
    # python3 shows the line of an exception raised again later (one file); a cell that defines
    # nothing keeps its source while its traceback is held, and not after.
    context = kernel.create_context(isolation=isolation)
    kernel.run_code("try:\n    1/0\nexcept Exception as e:\n    saved = e\n", context=context)
    again = kernel.run_code("raise saved", context=context).error
    assert again.traceback == (
        'Traceback (most recent call last):\n  File "<cell-2>", line 1, in <module>\n    raise saved\n'
        '  File "<cell-1>", line 2, in <module>\n    1/0\n    ~^~\nZeroDivisionError: division by zero\n')
    shown = kernel.run_code("import linecache\nprint(repr(linecache.getline('<cell-1>', 2)))", context=context)
    assert shown.stdout == "'    1/0\\n'\n"
    kernel.run_code("del saved, e\nimport gc\ngc.collect()", context=context)
    gone = kernel.run_code("import linecache\nprint(repr(linecache.getline('<cell-1>', 2)))", context=context)
    assert gone.stdout == "''\n"


@pytest.mark.parametrize("isolation", [None, "process"])
def test_sys_excepthook_called_by_the_code_shows_the_cells_lines(kernel, isolation):
    context = kernel.create_context(isolation=isolation)
    expected = ('Traceback (most recent call last):\n  File "<cell-1>", line 3, in <module>\n    {}["x"]\n'
                '    ~~^^^^^\nKeyError: \'x\'\n')
    for hook in ("sys.excepthook", "sys.__excepthook__"):
        ran = kernel.run_code(f'import sys\ntry:\n    {{}}["x"]\nexcept Exception:\n    {hook}(*sys.exc_info())\n',
                              context=kernel.create_context(isolation=isolation))
        assert (ran.status, ran.stderr) == ("ok", expected), hook
    assert kernel.run_code("import sys; print(sys.excepthook is sys.__excepthook__)", context=context).stdout == "True\n"


@pytest.mark.parametrize("isolation", [None, "process"])
def test_a_replaced_sys_excepthook_prints_a_cells_uncaught_exception(kernel, isolation):
    # As python3: the hook's output instead of the traceback (the record keeps name and value).
    context = kernel.create_context(isolation=isolation)
    try:
        ran = kernel.run_code("import sys\ndef hook(t, v, tb):\n    print('hooked', t.__name__, v, file=sys.stderr)\n"
                              "sys.excepthook = hook\nraise ValueError('x')\n", context=context)
        assert (ran.status, ran.stderr) == ("error", "hooked ValueError x\n")
        assert (ran.error.name, ran.error.value, ran.error.traceback) == ("ValueError", "x", "")
        # A stop is not handed to it: the record has the traceback of where the code was.
        with pytest.raises(PyKernelTimeoutError) as stopped:
            kernel.run_code("import time\ntime.sleep(30)", context=context, timeout=0.3)
        assert stopped.value.result.stderr == ""
        assert "time.sleep(30)" in stopped.value.result.error.traceback
        failing = kernel.run_code("def hook(t, v, tb):\n    raise RuntimeError('hook failed')\nsys.excepthook = hook\n1/0",
                                  context=context)
        assert failing.stderr == ('Error in sys.excepthook:\nTraceback (most recent call last):\n'
                                  '  File "<cell-3>", line 2, in hook\n    raise RuntimeError(\'hook failed\')\n'
                                  'RuntimeError: hook failed\n\nOriginal exception was:\n')
        assert failing.error.traceback.endswith('line 4, in <module>\n    1/0\n    ~^~\nZeroDivisionError: division by zero\n')
    finally:
        kernel.run_code("import sys\nsys.excepthook = sys.__excepthook__", context=context)
    assert kernel.run_code("1/0", context=context).error.traceback.startswith("Traceback")


_LOUD = "class Loud:\n    def __str__(self):\n        print('str called')\n        return 'loud'\n    __repr__ = __str__\n"


@pytest.mark.parametrize("isolation", [None, "process"])
def test_an_uncaught_exceptions_str_is_called_once_as_by_python3(kernel, isolation):
    # python3 calls str() of an uncaught exception once, to print it (a KeyError's: repr() of its
    # key): the record's value is the text its traceback printed, natively or by the Python port.
    context = kernel.create_context(isolation=isolation)
    kernel.run_code(_LOUD + "class Mine(Exception): pass\n", context=context)
    for code, last in (("raise ValueError(Loud())", "ValueError: loud\n"),  # the native record
                       ("raise Mine(Loud())", "Mine: loud\n"),  # the Python port's
                       ("e = ValueError(Loud())\ne.add_note('n')\nraise e", "ValueError: loud\nn\n"),
                       ("{}[Loud()]", "KeyError: loud\n"),
                       ("raise SystemExit(Loud())", "SystemExit: loud\n")):
        ran = kernel.run_code(code, context=context)
        assert (ran.stdout, ran.error.value) == ("str called\n", "loud"), code
        assert ran.error.traceback.endswith(last), code


@pytest.mark.parametrize("isolation", [None, "process"])
def test_a_lone_surrogate_in_a_message_is_shown_as_python3_prints_it(kernel, tmp_path, isolation):
    # python3's stderr writes it as its escape: so do the record's value and traceback, made
    # natively (a built-in exception) or by the Python port.
    context = kernel.create_context(isolation=isolation)
    for code in ("x = chr(0xdcff)\nraise ValueError(x)\n", "raise ValueError(chr(0xdcff))\n",
                 "message = 'caf\\xe9 ' + chr(0xdcff)\nraise OSError(message)\n",
                 "class Mine(Exception): pass\nx = chr(0xdcff)\nraise Mine(x)\n"):
        program = tmp_path / "prog.py"
        program.write_text(code)
        theirs = _run([PYTHON, str(program)], tmp_path)
        last = _text(theirs.stderr).splitlines()[-1]
        error = kernel.run_code(code, context=context).error
        assert error.traceback.splitlines()[-1] == last, code
        assert f"{error.name}: {error.value}" == last, code


_UNRAISABLE_PRELUDE = "import sys\nclass D:\n    def __del__(self):\n        1/0\n"
_UNRAISABLE_HOOK_PROGRAMS = {
    # The code's hook, called as python3 calls it (the same object is sys.unraisablehook).
    "called": _UNRAISABLE_PRELUDE + "def hook(u):\n    print('hooked', u.exc_type.__name__, u.object is not None)\n"
              "sys.unraisablehook = hook\nprint(sys.unraisablehook is hook, type(sys))\nd = D()\ndel d\n",
    # One that raises: CPython's own printer reports it, as python3's, but it reads source lines
    # from files only (a cell's frames show none: see _without_source_lines).
    "raises": _UNRAISABLE_PRELUDE + "def hook(u):\n    raise TypeError('hook failed')\n"
              "sys.unraisablehook = hook\nD()\nprint('after')\n",
    # None, or deleted: CPython's own printer too.
    "none": _UNRAISABLE_PRELUDE + "sys.unraisablehook = None\nD()\nprint(sys.unraisablehook)\n",
    "deleted": _UNRAISABLE_PRELUDE + "del sys.unraisablehook\nprint(hasattr(sys, 'unraisablehook'))\nD()\n"
               "sys.unraisablehook = sys.__unraisablehook__\n",
    # The default hook takes CPython's arguments only.
    "wrong_arguments": "import sys\nclass U: pass\nu = U()\n"
                       "u.exc_type, u.exc_value, u.exc_traceback, u.err_msg, u.object = None, None, None, 'msg', None\n"
                       "for hook in (sys.unraisablehook, sys.__unraisablehook__):\n    try:\n        hook(u)\n"
                       "    except TypeError as e:\n        print('TypeError', e)\n",
}


@pytest.mark.parametrize("isolation", [None, "process"])
@pytest.mark.parametrize("name", sorted(_UNRAISABLE_HOOK_PROGRAMS))
def test_the_codes_sys_unraisablehook_works_as_in_python3(kernel, tmp_path, isolation, name):
    code = _UNRAISABLE_HOOK_PROGRAMS[name]
    program = tmp_path / "prog.py"
    program.write_text(code)
    reference = subprocess.run([PYTHON, str(program)], capture_output=True, text=True, timeout=60)
    context = kernel.create_context(isolation=isolation)
    try:
        result = kernel.run_code(code, context=context)
    finally:
        kernel.run_code("import sys\nsys.unraisablehook = sys.__unraisablehook__", context=context)
        kernel.delete_context(context)
    assert result.error is None, result.error
    addresses = re.compile(r" at 0x[0-9a-f]+>")
    expected = addresses.sub(">", reference.stderr.replace(str(program), "<cell-1>"))
    if name in ("raises", "none", "deleted"):
        expected = _without_source_lines(expected)
    assert (result.stdout, addresses.sub(">", result.stderr)) == (reference.stdout, expected)


def _without_source_lines(text):
    """A traceback as CPython's C printer shows a cell's frames: no source line (nor carets) under
    `File "<cell-1>"` (it reads files only; documented in docs/protocol.md)."""
    lines, under_cell = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith('  File "<cell-1>"'):
            under_cell = True
        elif under_cell and line.startswith("    "):
            continue
        else:
            under_cell = False
        lines.append(line)
    return "".join(lines)


@pytest.mark.parametrize("isolation", [None, "process"])
@pytest.mark.parametrize("name", ["linecache_entry_of_the_code.py", "linecache_entry_of_a_syntax_error.py"])
def test_a_served_context_shows_no_line_the_code_put_in_linecache(kernel, isolation, name):
    # The engine's records come from its native printer and the port: held to python3 too.
    ran = kernel.run_code(_read(name), context=kernel.create_context(isolation=isolation))
    assert ran.error.traceback == interpreter_output(name)[0]


@pytest.mark.parametrize("isolation", [None, "process"])
def test_a_deleted_sys_excepthook_is_reported_missing(kernel, isolation):
    # python3's PyErr_PrintEx: "sys.excepthook is missing", then the traceback (the record's here).
    context = kernel.create_context(isolation=isolation)
    ran = kernel.run_code('import sys\ndel sys.excepthook\nraise ValueError("deleted hook")\n', context=context)
    assert (ran.status, ran.stderr) == ("error", "sys.excepthook is missing\n")
    assert (ran.error.name, ran.error.value, ran.error.traceback) == (
        "ValueError", "deleted hook",
        'Traceback (most recent call last):\n  File "<cell-1>", line 3, in <module>\n'
        '    raise ValueError("deleted hook")\nValueError: deleted hook\n')


def test_another_contexts_function_shows_its_own_cells_lines(kernel):
    # Every namespace context names its cells <cell-N>: a function of context A called from B
    # (through a shared module) shows A's line, not B's line of the same number.
    a, b = kernel.create_context(), kernel.create_context()
    kernel.run_code("import builtins\ndef fa():\n    marker = 1\n    raise ValueError('from A')\nbuiltins.fa_shared = fa\n",
                    context=a)
    for cell, code in ((1, "x0 = 0\nx1 = 1\nx2 = 2\nfa_shared()\n"), (2, "fa_shared()\n")):
        error = kernel.run_code(code, context=b).error
        line = code.count("\n")
        assert error.traceback == (
            f'Traceback (most recent call last):\n  File "<cell-{cell}>", line {line}, in <module>\n    fa_shared()\n'
            '  File "<cell-1>", line 4, in fa\n    raise ValueError(\'from A\')\nValueError: from A\n')
    # Printed by the traceback module too (linecache), and after its context's deletion while
    # the function lives (not B's line 4 of its <cell-1>).
    shown = kernel.run_code("import traceback\ntry:\n    fa_shared()\nexcept ValueError:\n    traceback.print_exc()", context=b)
    assert "in fa\n    raise ValueError('from A')\n" in shown.stderr
    kernel.delete_context(a)
    after = kernel.run_code("fa_shared()", context=b).error.traceback
    assert after.endswith('  File "<cell-1>", line 4, in fa\n    raise ValueError(\'from A\')\nValueError: from A\n')
    kernel.run_code("import builtins\ndel builtins.fa_shared", context=b)


@pytest.mark.parametrize("isolation", [None, "process"])
def test_inspect_getsource_of_a_class_defined_in_a_cell(kernel, isolation):
    # python3.11's inspect looks for __main__.__file__ for a class (a cell's module has none, as
    # `python3 -c`'s): python3 file.py shows the class, and so does a cell.
    context = kernel.create_context(isolation=isolation)
    ran = kernel.run_code("import inspect\nclass K:\n    a = 1\nprint(inspect.getsource(K), end='')", context=context)
    assert (ran.status, ran.stdout) == ("ok", "class K:\n    a = 1\n")
    kernel.run_code("class M:\n    @property\n    def p(self):\n        return 1\n\nclass Outer:\n    class Inner:\n        x = 2\n",
                    context=context)
    later = kernel.run_code("print(inspect.getsource(M), end='')\nprint(inspect.getsource(Outer.Inner), end='')\n"
                            "print(inspect.getsourcelines(Outer)[1])", context=context)
    assert later.stdout == "class M:\n    @property\n    def p(self):\n        return 1\n    class Inner:\n        x = 2\n6\n"
    # What is not a cell's class is inspect's as before.
    builtin = kernel.run_code("inspect.getfile(int)", context=context)
    assert (builtin.error.name, builtin.error.value) == ("TypeError", "<class 'int'> is a built-in class")
    made = kernel.run_code("Made = type('Made', (), {})\ninspect.getsource(Made)", context=context)
    assert made.error.name == "OSError"  # no cell defines it


# Characters str.splitlines() splits at and the compiler does not (\f, \v, \x1c-\x1e, \x85,
# U+2028/U+2029), and CRLF or CR line ends: the lines linecache gives (inspect, traceback, warnings)
# are the compiler's, as python3's universal-newline reading of a file gives them.
_ODD_LINES = (
    "import inspect, linecache, sys, traceback, warnings\n"
    "warnings.simplefilter('always')\n"
    "s = 'para\u2028graph\u2029\x85\x0b\x1c\x1d\x1e'  # a form feed in a comment: \x0c\n"
    "def f():\n"
    "    return 1/0\n"
    "warnings.warn('look here')\n"
    "try:\n"
    "    f()\n"
    "except ZeroDivisionError:\n"
    "    traceback.print_exc(file=sys.stdout)\n"
    "print(repr(inspect.getsource(f)))\n"
    "print(repr(linecache.getline(f.__code__.co_filename, 5)))\n")


@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("isolation", [None, "process", "run"])
def test_linecache_lines_of_a_cell_are_the_compilers(request, pykernel_bin, tmp_path, isolation, line_end):
    # Each served case in a fresh context of the module's server (no server state is read: its
    # cell's lines, found by the name the run prints), the run case in no server at all.
    source = _ODD_LINES.replace("\n", line_end)
    program = tmp_path / "prog.py"
    program.write_bytes(source.encode())
    expected = _run([PYTHON, "prog.py"], tmp_path)
    assert expected.returncode == 0, expected.stderr

    def shown(text, name):
        return text.replace(name, "FILE")

    want = (shown(_text(expected.stdout), str(program)), shown(_text(expected.stderr), str(program)))
    assert "    return 1/0\n           ~^~\n" in want[0] and "'    return 1/0\\n'" in want[0]
    if isolation == "run":
        ran = _run([pykernel_bin, "run", "prog.py"], tmp_path)
        assert (shown(_text(ran.stdout), str(program)), shown(_text(ran.stderr), str(program))) == want
    else:
        kernel = request.getfixturevalue("module_kernel")
        context = kernel.create_context(isolation=isolation)
        try:
            ran = kernel.run_code(source, context=context)
        finally:
            kernel.delete_context(context)
        assert ran.status == "ok", ran.error
        cell = re.search(r"<cell-\d+>", ran.stdout).group(0)
        assert (shown(ran.stdout, cell), shown(ran.stderr, cell)) == want


_LONG_CHAIN = (
    "def attempt(i, previous):\n    try:\n        raise ValueError('attempt %d failed' % i)\n"
    "    except ValueError as exc:\n        exc.__cause__ = previous\n        return exc\n"
    "def chain(n):\n    error = None\n    for i in range(n):\n        error = attempt(i, error)\n    return error\n")
_LONG_CHAIN_ROUTES = {
    # The program's uncaught exception: the record's traceback.
    "uncaught": "raise chain(N)\n",
    # A thread's, printed under its bootstrap's three frames.
    "thread": "import threading\ndef run():\n    raise chain(N)\n"
              "t = threading.Thread(target=run, name='t')\nt.start()\nt.join()\n",
    # The hook called by the code, six of its frames deep, under a lower recursion limit.
    "excepthook": "import sys\nsys.setrecursionlimit(600)\nerror = chain(N)\n"
                  "def g(k):\n    return g(k - 1) if k else sys.excepthook(type(error), error, error.__traceback__)\ng(4)\n",
}


@pytest.mark.parametrize("route", sorted(_LONG_CHAIN_ROUTES))
def test_a_long_chain_of_exceptions_prints_as_far_as_python3s_printer(kernel, tmp_path, route):
    """python3's C printer follows __cause__/__context__ as deep as its recursion limit lets it
    (less the code's frames under the hook, and the calls of a write): every exception down to
    the first, the deepest at its edge without its source line; past it nothing (it dumps the
    exception on C's stderr: the port gives its last line). The port prints the same text."""
    limit = 600 if route == "excepthook" else 1000
    printed = lost = 0
    for n in (1, 2, 300, 500) + tuple(range(limit - 10, limit)):
        code = _LONG_CHAIN + _LONG_CHAIN_ROUTES[route].replace("N", str(n))
        program = tmp_path / "prog.py"
        program.write_text(code)
        reference = subprocess.run([PYTHON, str(program)], capture_output=True, text=True, timeout=60)
        expected = reference.stderr.replace(str(program), "<cell-1>")
        context = kernel.create_context()
        result = kernel.run_code(code, context=context, timeout=60)
        kernel.delete_context(context)
        shown = result.error.traceback if route == "uncaught" else result.stderr
        if "lost sys.stderr" in expected:
            lost += 1
            header = "Exception in thread t:\n" if route == "thread" else ""
            assert shown == header + "ValueError: attempt %d failed\n" % (n - 1), n
        else:
            printed += 1
            assert shown == expected, n
    assert printed > 4 and lost  # the edge is in the range
