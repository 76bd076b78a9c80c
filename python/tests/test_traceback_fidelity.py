"""pykernel_traceback.format_exception must print what ``python3.11 file.py`` prints.

For every program in traceback_corpus/ the reference is produced by CPython 3.11 itself and
compared byte for byte with pykernel_traceback's text for the same program run as PyKernel
cells.  Both sides run in subprocesses of /usr/bin/python3.11 (the interpreter PyKernel
embeds, Debian's 3.11.2), so the Python running pytest does not matter.

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

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "traceback_corpus")
DRIVER = os.path.join(HERE, "traceback_driver.py")
PYTHON = "/usr/bin/python3.11"

sys.path.insert(0, HERE)
from traceback_driver import split_cells  # noqa: E402  (pure function, any Python 3)

PROGRAMS = sorted(name for name in os.listdir(CORPUS) if name.endswith(".py"))

pytestmark = pytest.mark.skipif(not os.path.exists(PYTHON), reason=PYTHON + " is not installed")


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


def interpreter_output(name):
    """(stderr, returncode) of ``python3.11 prog.py`` with prog.py's path shown as <cell-1>."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        shutil.copyfile(os.path.join(CORPUS, name), os.path.join(tmp, "prog.py"))
        proc = _run([PYTHON, "prog.py"], tmp)
        path = os.path.join(tmp, "prog.py")
        return _text(proc.stderr).replace('File "%s"' % path, 'File "<cell-1>"'), proc.returncode


def oracle_output(name):
    """sys.__excepthook__'s text for the cells compiled from real files, paths as <cell-N>."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.path.realpath(tmp)
        proc = _run([PYTHON, DRIVER, "oracle", os.path.join(CORPUS, name), tmp], tmp)
        return re.sub(r'File "%s/cell_(\d+)\.py"' % re.escape(tmp), r'File "<cell-\1>"',
                      _text(proc.stderr))


def kernel_output(name):
    """pykernel_traceback.format_exception's text for the program run as cells."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "traceback.txt")
        proc = _run([PYTHON, DRIVER, "cells", os.path.join(CORPUS, name), out], tmp)
        assert proc.returncode == 1 and not proc.stderr, _text(proc.stderr)
        with open(out, "rb") as f:
            return _text(f.read())


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
def test_traceback_fidelity(name):
    expected = expected_output(name)
    assert expected, "the reference printed nothing"
    assert kernel_output(name) == expected


@pytest.mark.parametrize("name", [n for n in PROGRAMS if reference_kind(_read(n)) == "cells"])
def test_multi_cell_matches_concatenated_file(name):
    # Same frames, source lines, carets and messages as one file holding all cells; only file
    # names and line numbers may differ.
    stderr, _ = interpreter_output(name)
    assert mask_locations(kernel_output(name)) == mask_locations(stderr)


@pytest.mark.parametrize("name", [n for n in PROGRAMS if reference_kind(_read(n)) == "excepthook"])
def test_system_exit_is_silent_in_the_interpreter(name):
    # Documents why these programs use sys.__excepthook__ as the reference.
    stderr, returncode = interpreter_output(name)
    assert "Traceback" not in stderr
    assert kernel_output(name).startswith("Traceback (most recent call last):\n")
