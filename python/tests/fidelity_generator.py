"""Differential fidelity: many generated programs run by python3.11 and by PyKernel.

Each program is made of random parts -- output to stdout/stderr in every form (with and without
newlines, flushes, unicode, lone surrogates, huge writes, the binary buffer, descriptor writes),
warnings (warn, filters set in code, DeprecationWarning's defaults, warnings of an imported
module, compile-time SyntaxWarnings), things that print on stderr and go on (exceptions in
threads, in ``__del__``, in atexit callbacks) -- and one way to end: falling off the end, an
uncaught exception raised in many places (comprehensions, lambdas, generators, coroutines,
class bodies, ``__repr__``/``__str__``, a sibling module, code compiled under another file
name), ``SystemExit`` with every kind of code, ``os._exit``, ``KeyboardInterrupt``,
``RecursionError``, streams closed or replaced before the end, ``input()`` without a stdin.
Syntax errors (unterminated strings, f-strings, indentation, tabs, line continuations, unicode
identifiers, source that is not UTF-8, with or without a coding cookie) make a second kind of
program, as whole files and as a sibling module that the program imports.

Every program is run as ``/usr/bin/python3.11 prog.py`` and as ``pykernel run prog.py`` (stdout,
stderr and exit status compared byte for byte), and those whose python3 run ends with a
traceback (and prints nothing after it) as a cell of a fresh context of ``pykernel serve``:
the cell's stdout, its stderr followed by the error record's traceback, must be python3's
stdout and stderr with the file's path shown as ``<cell-1>``.

    /usr/bin/python3.11 python/tests/fidelity_generator.py --pykernel .build/debug/pykernel \\
        [--count 600] [--seed 1] [--keep DIR]

prints the divergences found (and with ``--keep`` writes each diverging program there, ready to
be added to a corpus).  test_fidelity_generator.py runs a sample of them on every test run.
"""

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile

PYTHON = "/usr/bin/python3.11"
HERE = os.path.dirname(os.path.abspath(__file__))


def environment(**changes):
    """The environment both interpreters run in: the test environment's, without what changes
    python3's buffering or encodings, plus ``changes``."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "LC_")) and key != "LANG"}
    env.update(PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1", LC_ALL="C.UTF-8")
    env.update(changes)
    return env


class Program:
    """A generated program: its files (``prog.py`` and siblings, as bytes), whether a served
    context can give python3's text for it, and what its standard input is."""

    def __init__(self, name, files, served=True, stdin=b""):
        self.name = name
        self.files = files
        self.served = served
        self.stdin = stdin


# Parts of a program's body.  Each is (source, served): `served` is False for a part whose
# effect a cell cannot reproduce (it acts at the interpreter's exit, or on the process).

OUTPUT_PARTS = [
    ("print('hello')", True),
    ("print('no newline', end='')", True),
    ("print('a', 'b', 3, sep='|', end='!\\n')", True),
    ("print()", True),
    ("print(end='')", True),
    ("print('to stderr', file=sys.stderr)", True),
    ("print('stderr no newline', file=sys.stderr, end='')", True),
    ("sys.stderr.write('written to stderr\\n')", True),
    ("sys.stdout.write('written')", True),
    ("sys.stdout.write('x' * 70000 + '\\n')", True),
    ("sys.stdout.write('é' * 40000)", True),
    ("print('é', '名前', '🎉', 'a\\u0301')", True),
    ("print('tab\\tcr\\rnul\\0bell\\a')", True),
    ("print('line1\\nline2\\r\\nline3')", True),
    ("print('flushed', flush=True)", True),
    ("sys.stdout.flush()", True),
    ("sys.stderr.flush()", True),
    ("print('\\ud800 lone surrogate')", True),
    ("sys.stderr.write('\\udcff on stderr\\n')", True),
    ("print(repr('\\udc80'), ascii('名'))", True),
    ("sys.stdout.buffer.write(b'raw bytes \\xff\\xfe\\n')", False),
    ("os.write(1, b'descriptor one\\n')", False),
    ("os.write(2, b'descriptor two\\n')", False),
    ("print(*range(5), sep='')", True),
    ("print(b'bytes', bytearray(b'ba'), None, 1.5, [1, 'x'], {'k': (1,)})", True),
    ("print('\\N{SNOWMAN}' * 3, file=sys.stderr)", True),
    ("sys.stdout.writelines(['w1\\n', 'w2'])", True),
    ("print(sys.stdout.encoding, sys.stdout.errors, sys.stderr.errors)", False),
    ("print(sys.stdout.isatty(), sys.stdin.isatty() if sys.stdin else None)", False),
    ("print('%s' % ('x' * 5000))", True),
    ("print(__name__)", True),
    ("print(os.path.basename(__file__))", False),
    ("print(sys.argv[1:])", False),
    ("print(len(sys.argv), os.path.basename(sys.argv[0]))", False),
]

WARNING_PARTS = [
    ("warnings.warn('careful')", True),
    ("warnings.warn('deprecated here', DeprecationWarning)", True),
    ("warnings.warn('pending', PendingDeprecationWarning)", True),
    ("warnings.warn('future', FutureWarning)", True),
    ("warnings.warn('bytes', BytesWarning)", True),
    ("warnings.warn('runtime', RuntimeWarning)", True),
    ("warnings.warn('résumé 名')", True),
    ("warnings.warn('multi\\nline')", True),
    ("for _ in range(3):\n    warnings.warn('in a loop')", True),
    ("def old():\n    warnings.warn('use new', DeprecationWarning, stacklevel=2)\nold()", True),
    ("def deeper():\n    warnings.warn('level 3', UserWarning, stacklevel=3)\ndef mid():\n    deeper()\nmid()", True),
    ("warnings.warn('too high', stacklevel=10)", True),
    ("warnings.simplefilter('always')\nfor _ in range(2):\n    warnings.warn('always shown')", True),
    ("warnings.simplefilter('ignore')\nwarnings.warn('not shown')", True),
    ("warnings.filterwarnings('error', category=RuntimeWarning)\ntry:\n    warnings.warn('raised', RuntimeWarning)\n"
     "except RuntimeWarning as exc:\n    print('caught', exc)", True),
    ("warnings.filterwarnings('ignore', message='quiet')\nwarnings.warn('quiet please')\nwarnings.warn('loud')", True),
    ("warnings.warn_explicit('explicit', UserWarning, 'elsewhere.py', 7)", True),
    ("warnings.warn(UserWarning('an instance'))", True),
    ("class MyWarning(UserWarning):\n    pass\nwarnings.warn('custom', MyWarning)", True),
    ("with warnings.catch_warnings(record=True) as caught:\n    warnings.simplefilter('always')\n"
     "    warnings.warn('recorded')\nprint(len(caught), caught[0].message)", True),
    ("def show(message, category, filename, lineno, file=None, line=None):\n"
     "    print('shown:', message, category.__name__, lineno)\nwarnings.showwarning = show\nwarnings.warn('via hook')", True),
    ("print(eval('1 is 1'))", True),
    ("x = eval(\"'\\\\d'\")", True),
    ("import helper_warns", True),
    ("open(__file__).read()", False),
    ("import asyncio\nasync def never():\n    pass\nnever()\nimport gc\ngc.collect()", True),
]

COMPILE_WARNING_PARTS = [
    # Compile-time warnings of the file itself: python3 prints them before the program runs.
    ("if 1 is 1:\n    pass", True),
    ("assert (False, 'tuple')", True),
    ("path = '\\d+'", True),
    ("value = [1, 2] [0]", True),
]

SIDE_PARTS = [
    ("def worker():\n    1 / 0\nt = threading.Thread(target=worker)\nt.start()\nt.join()", True),
    ("t = threading.Thread(target=lambda: sys.exit(4), name='exiting')\nt.start()\nt.join()", True),
    ("def boom():\n    raise ValueError('in thread')\nt = threading.Thread(target=boom, name='named')\nt.start()\nt.join()", True),
    ("def hook(args):\n    print('hooked', args.exc_type.__name__, file=sys.stderr)\nthreading.excepthook = hook\n"
     "t = threading.Thread(target=lambda: [][1])\nt.start()\nt.join()", True),
    ("class D:\n    def __del__(self):\n        raise RuntimeError('in __del__')\nd = D()\ndel d", True),
    ("class Cyc:\n    def __del__(self):\n        print('collected')\nc = Cyc()\nc.me = c\ndel c\nimport gc\ngc.collect()", True),
    ("atexit.register(print, 'at exit')", False),
    ("def bad_exit():\n    raise KeyError('atexit')\natexit.register(bad_exit)", False),
    ("atexit.register(lambda: sys.exit(9))", False),
    ("class Late:\n    def __del__(self):\n        print('deleted at exit')\nkeep = Late()", False),
    ("def late_thread():\n    threading.main_thread().join()\n    print('after main')\nthreading.Thread(target=late_thread).start()", False),
    ("threading.Thread(target=lambda: print('daemon'), daemon=True).start()", False),
    ("sys.unraisablehook = lambda u: print('unraisable', u.exc_type.__name__, file=sys.stderr)\n"
     "class D2:\n    def __del__(self):\n        1 / 0\nD2()", True),
    ("import gc\ngc.collect()", True),
    ("sys.excepthook = lambda t, v, tb: print('excepthook', t.__name__, v, file=sys.stderr)", False),
    ("def failing_hook(t, v, tb):\n    raise TypeError('hook failed')\nsys.excepthook = failing_hook", False),
    ("sys.tracebacklimit = 1", True),
    ("sys.tracebacklimit = 0", True),
    ("sys.setrecursionlimit(200)", True),
    ("sys.stdout.reconfigure(line_buffering=True)", False),
    ("sys.stderr.reconfigure(errors='strict')", False),
]

# How a program ends: (source, served, what stdin gets).  served is False when the end is not
# an exception a cell can report as python3 prints it.
ENDINGS = [
    ("pass", False),
    ("1 / 0", True),
    ("[1 / x for x in range(3)]", True),
    ("{k: v.missing for k, v in {'a': 1}.items()}", True),
    ("(lambda q: q.upper())(5)", True),
    ("f = lambda: undefined_name\nf()", True),
    ("gen = (int(x) for x in ['1', 'two'])\nlist(gen)", True),
    ("def numbers():\n    yield 1\n    raise StopIteration('inner')\nlist(numbers())", True),
    ("import asyncio\nasync def main():\n    await asyncio.sleep(0)\n    raise ValueError('async')\nasyncio.run(main())", True),
    ("import asyncio\nasync def child():\n    raise KeyError('task')\nasync def main():\n    await asyncio.gather(child())\n"
     "asyncio.run(main())", True),
    ("class Body:\n    x = 1\n    y = x + 'a'", True),
    ("class R:\n    def __repr__(self):\n        raise AttributeError('repr failed')\nprint(R())", True),
    ("class S:\n    def __str__(self):\n        return 42\nprint(S())", True),
    ("class E(Exception):\n    def __str__(self):\n        raise RuntimeError\nraise E('x')", True),
    ("class E2(Exception):\n    def __str__(self):\n        return 'é\\udcff'\nraise E2()", True),
    ("try:\n    {}['k']\nexcept KeyError:\n    raise ValueError('translated') from None", True),
    ("try:\n    int('x')\nexcept ValueError as exc:\n    raise RuntimeError('wrapped') from exc", True),
    ("try:\n    1 / 0\nexcept ZeroDivisionError:\n    [].pop()", True),
    ("exc = ValueError('noted')\nexc.add_note('note one')\nexc.add_note('note\\ntwo lines')\nraise exc", True),
    ("raise ExceptionGroup('group', [ValueError(1), TypeError('two')])", True),
    ("raise ExceptionGroup('outer', [ExceptionGroup('inner', [KeyError('k')]), OSError(2, 'no')])", True),
    ("try:\n    raise ExceptionGroup('eg', [ValueError('v'), TypeError('t')])\nexcept* ValueError:\n    print('handled v')", True),
    ("def r(n):\n    return r(n + 1)\nr(0)", True),
    ("def a(n):\n    return b(n)\ndef b(n):\n    return a(n)\na(0)", True),
    ("import json\njson.dumps(object())", True),
    ("raise KeyboardInterrupt", True),
    ("raise KeyboardInterrupt('by code')", True),
    ("sys.exit()", False),
    ("sys.exit(0)", False),
    ("sys.exit(3)", False),
    ("sys.exit(256)", False),
    ("sys.exit(-1)", False),
    ("sys.exit(2 ** 40)", False),
    ("sys.exit(True)", False),
    ("sys.exit('message for the user')", False),
    ("sys.exit('é 名 \\udcff')", False),
    ("sys.exit(None)", False),
    ("sys.exit([1, 'two'])", False),
    ("sys.exit(3.5)", False),
    ("raise SystemExit(1, 2)", False),
    ("raise SystemExit", False),
    ("class Code:\n    def __str__(self):\n        raise ValueError\nsys.exit(Code())", False),
    ("exit(5)", False),
    ("quit()", False),
    ("os._exit(0)", False),
    ("os._exit(7)", False),
    ("print('lost?', end='')\nos._exit(2)", False),
    ("sys.stdout.close()", False),
    ("sys.stdout.close()\nprint('after close')", False),
    ("sys.stderr.close()\n1 / 0", False),
    ("sys.stdout = io.StringIO()\nprint('hidden')\n1 / 0", False),
    ("sys.stderr = io.StringIO()\n1 / 0", False),
    ("sys.stderr = None\n1 / 0", False),
    ("sys.stdout = None\nprint('nowhere')", False),
    ("sys.stdout = None\nsys.exit('none out')", False),
    ("input()", False),
    ("input('prompt: ')", False),
    ("sys.stdin.close()\ninput()", False),
    ("sys.stdin = None\ninput('q')", True),
    ("print(sys.stdin.read())", False),
    ("import helper_fails", True),
    ("import helper_fails_later\nhelper_fails_later.go()", True),
    ("from helper_syntax import x", True),
    ("code = compile('def h():\\n    return 1 / 0\\n', 'custom_name.py', 'exec')\nexec(code)\nh()", True),
    ("code = compile('def h():\\n    return 1 / 0\\n', 'helper_fails.py', 'exec')\nexec(code)\nh()", True),
    ("exec('x = 1\\ny = x +', {})", True),
    ("eval('1 +* 2')", True),
    ("exec('def k():\\n    raise OSError(2, \"gone\", \"file.txt\")\\nk()')", True),
    ("import pathlib\npathlib.Path('does/not/exist.txt').read_text()", True),
    ("raise MemoryError", True),
    ("raise BaseException('base')", True),
    ("raise GeneratorExit", True),
    ("raise Exception", True),
    ("raise Exception()", True),
    ("raise Exception('')", True),
    ("raise Exception('a', 2)", True),
    ("raise OSError(13, 'denied', 'f.txt', None, 'g.txt')", True),
    ("raise UnicodeDecodeError('utf-8', b'\\xff', 0, 1, 'bad')", True),
    ("b'\\xff'.decode()", True),
    ("'é'.encode('ascii')", True),
    ("raise SyntaxError('made up', ('made.py', 3, 5, 'x = (1 +', 3, 7))", True),
    ("raise IndentationError('made', ('<string>', 1, 2, ' x', 1, 2))", True),
    ("assert 1 + 1 == 3, 'math'", True),
    ("x = [1, 2]\nx[5]", True),
    ("nmae = 1\nprint(name)", True),
    ("import collections\ncollections.OrderdDict", True),
    ("'text'.uper()", True),
    ("from os import pathh", True),
    ("import no_such_module_anywhere", True),
    ("raise TimeoutError", True),
    ("import threading\nthreading.Thread(target=print, args=('x',)).start()\nraise ValueError('main')", True),
    ("if __name__ == '__main__':\n    raise RuntimeError('main guard')", True),
    ("def outer():\n    def inner():\n        return {}['deep']\n    return inner()\nouter()", True),
    ("import functools\n@functools.lru_cache\ndef c(x):\n    return 1 / x\nc(0)", True),
    ("class P:\n    @property\n    def v(self):\n        return self.missing\nP().v", True),
    ("import itertools\nlist(itertools.starmap(pow, [(2, 'x')]))", True),
    ("sorted([3, 'a', 1])", True),
    ("max([])", True),
    ("int('12' * 2500)", True),
]

HELPERS = {
    "helper_warns.py": "import warnings\nwarnings.warn('from a module')\n"
                       "warnings.warn('module deprecation', DeprecationWarning)\n"
                       "def f():\n    warnings.warn('called from the program', UserWarning, stacklevel=2)\nf()\n",
    "helper_fails.py": "x = 1\n\ndef inner():\n    return {}['missing']\n\ninner()\n",
    "helper_fails_later.py": "def go():\n    helper()\n\ndef helper():\n    raise LookupError('from the module')\n",
    "helper_syntax.py": "x = 1\ny = (2,\nz = 3\n",
}


# Syntax errors: sources (bytes) that python3 refuses to compile, each at a random line.

SYNTAX_ERRORS = [
    b"s = 'unterminated\n",
    b's = "unterminated\n',
    b"s = '''never closed\nmore\n",
    b"s = f'{a b}'\n",
    b"s = f'{}'\n",
    b"s = f'{x!z}'\n",
    b"s = f'{'\n",
    b"s = f'}'\n",
    b"s = f'{x:{y:{z}}}'\n",
    b"s = f\"{'a' 'b'\"\n",
    b"x = a\xe2\x82\xacb\n",
    b"\xe5\x90\x8d\xe5\x89\x8d = 1 +\n",
    b"x = 1 + \\ 2\n",
    b"x = 1 + \\\n",
    b"if True:\nprint('x')\n",
    b"  x = 1\n",
    b"if True:\n    x = 1\n  y = 2\n",
    b"if True:\n\tx = 1\n        y = 2\n",
    b"def f():\n\tif True:\n\t\treturn 1\n        return 2\n",
    b"for x in range(3)\n    pass\n",
    b"print 'hello'\n",
    b"x = (1, 2\n",
    b"x = [1, 2)\n",
    b"x = }\n",
    b"x = 1 +* 2\n",
    b"def f(:\n    pass\n",
    b"class C\n    pass\n",
    b"x = 5 = y\n",
    b"f() = 1\n",
    b"del f()\n",
    b"return 1\n",
    b"break\n",
    b"def f():\n    nonlocal q\n",
    b"def f():\n    x = 1\n    global x\n",
    b"x = 0777\n",
    b"x = 1_\n",
    b"x = 1__0\n",
    b"x = 0b102\n",
    b"x = 1e\n",
    b"x = $\n",
    b"x = a ? b\n",
    b"x = \xe2\x80\x9cquoted\xe2\x80\x9d\n",
    b"x = '\\N{NOT A NAME}'\n",
    b"x = b'\xc3\xa9'\n",
    b"x = '\\x4'\n",
    b"lambda: (yield)\nawait x\n",
    b"async def f():\n    yield from g()\n",
    b"def f(a, a):\n    pass\n",
    b"f(x for x in y, 1)\n",
    b"f(**k, *a)\n",
    b"f(a=1, a=2)\n",
    b"x = {1: 2, 3}\n",
    b"match x:\n    case 1 + 1:\n        pass\n",
    b"import a.b as\n",
    b"from . import\n",
    b"try:\n    pass\n",
    b"try:\n    pass\nexcept* :\n    pass\n",
    b"with open(x) as f, :\n    pass\n",
    b"x = (\n",
    b"x = 1 if 2\n",
    b"a, *b, *c = d\n",
    b"x = [i for i in range(3) if]\n",
    b"print(f'{x=!r:>{10}')\n",
    b"\x00\n",
    b"x = 1\x00\n",
    b"x = '\xe9'\n",
    b"# \xe9 in a comment\n",
    b"x = 1\n\xff\xfe\n",
    b"\\\n",
    b"if x:\n    pass\n  else:\n    pass\n",
    b"x = (1,\n     2\n     3)\n",
    b"def f():\n    '''doc\n",
    b"x = \"\"\"a\nb\nc\n",
    b"@\ndef f(): pass\n",
    b"x = 1\n" + b" " * 200 + b"y = 2\n",
    b"x = " + b"(" * 201 + b"1" + b")" * 201 + b"\n",
    b"x = 1 +\t\t  \xe5\x90\x8d +\n",
    b"\tx = 1\n",
    b"\x0cx = 1\n  y = 2\n",
    b"print(1)\r\nx = (\r\n",
    b"x = 1\ry = (\n",
]

CODINGS = [
    (b"", None),
    (b"# -*- coding: latin-1 -*-\n", "latin-1"),
    (b"# coding: utf-8\n", "utf-8"),
    (b"#!/usr/bin/env python3\n# vim: set fileencoding=cp1252 :\n", "cp1252"),
    (b"# coding: bogus-encoding\n", None),
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xef\xbb\xbf# coding: latin-1\n", None),
    (b"# coding=utf-16\n", None),
]

VALID_LINES = [
    b"import sys\n",
    b"x = 1\n",
    b"print('before')\n",
    b"def g(a, b=2):\n    return a + b\n",
    b"data = {'k': [1, 2, 3]}\n",
    b"# a comment \xc3\xa9\n",
    b"\n",
    b"s = '\xc3\xa9t\xc3\xa9'\n",
    b"class K:\n    pass\n",
]


def _indent(source, prefix="    "):
    return "".join(prefix + line if line.strip() else line for line in source.splitlines(True))


def _runtime_program(rng, index):
    parts, served = [], True
    for pool, chance, most in ((OUTPUT_PARTS, 0.9, 4), (WARNING_PARTS, 0.5, 2), (SIDE_PARTS, 0.4, 2),
                               (COMPILE_WARNING_PARTS, 0.1, 1)):
        if rng.random() < chance:
            for source, part_served in rng.sample(pool, rng.randint(1, most)):
                parts.append(source)
                served = served and part_served
    rng.shuffle(parts)
    ending, ending_served = rng.choice(ENDINGS)
    served = served and ending_served
    body = "\n".join(parts + [ending]) + "\n"
    header = "import atexit, io, os, sys, threading, warnings\n"
    style = rng.random()
    if style < 0.2:
        body = "def main():\n" + _indent(body) + "\nif __name__ == '__main__':\n    main()\n"
    elif style < 0.3:
        body = "if __name__ == '__main__':\n" + _indent(body)
    source = header + body
    if rng.random() < 0.05:
        source = source.replace("\n", "\r\n")
    files = {"prog.py": source.encode("utf-8", "surrogatepass")}
    for helper, text in HELPERS.items():
        if helper[:-3] in source:
            files[helper] = text.encode()
    stdin = rng.choice([b"", b"one line\n", b"no newline", None])
    return Program("runtime_%04d" % index, files, served, stdin)


def _syntax_program(rng, index):
    cookie, encoding = rng.choice(CODINGS)
    before = b"".join(rng.choice(VALID_LINES) for _ in range(rng.randint(0, 4)))
    error = rng.choice(SYNTAX_ERRORS)
    after = b"".join(rng.choice(VALID_LINES) for _ in range(rng.randint(0, 2)))
    source = cookie + before + error + after
    if encoding not in (None, "utf-8") and rng.random() < 0.5:
        try:
            source = source.decode("utf-8").encode(encoding)
        except (UnicodeError, LookupError):
            pass
    if rng.random() < 0.15:
        source = source.rstrip(b"\n")
    if rng.random() < 0.25:
        # The error is in a module the program imports: its traceback names the other file.
        files = {"prog.py": b"print('start')\nimport broken_module\n", "broken_module.py": source}
    else:
        files = {"prog.py": source}
    # Served: a cell is text, compiled from a str (a null byte is compile()'s ValueError, not the
    # file reader's quirk) and may use top-level await; neither is compared.
    served = len(files) == 1 and not cookie and b"\0" not in source and b"await" not in source
    try:
        source.decode("utf-8")
    except UnicodeDecodeError:
        served = False
    return Program("syntax_%04d" % index, files, served=served, stdin=b"")


def generate(seed, count):
    """``count`` programs, the same for the same seed: about three runtime programs to one
    syntax error."""
    rng = random.Random(seed)
    programs = []
    for index in range(count):
        maker = _syntax_program if rng.random() < 0.25 else _runtime_program
        programs.append(maker(rng, index))
    return programs


def _write(program, directory):
    for name, data in program.files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)


def _stdin_argument(program):
    return subprocess.DEVNULL if program.stdin is None else program.stdin


def run_both(program, pykernel_bin, merged=False, env=None):
    """(python3.11's, pykernel run's) (status, stdout, stderr) for the program, each run in a
    fresh directory holding its files, with argv ``prog.py arg``."""
    outcomes = []
    for command in ([PYTHON, "prog.py", "arg"], [pykernel_bin, "run", "prog.py", "arg"]):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = os.path.realpath(tmp)
            _write(program, tmp)
            kwargs = {"input": program.stdin} if program.stdin is not None else {"stdin": subprocess.DEVNULL}
            try:
                done = subprocess.run(command, cwd=tmp, env=env or environment(), stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT if merged else subprocess.PIPE, timeout=60, **kwargs)
                outcome = (done.returncode, done.stdout, done.stderr or b"")
            except subprocess.TimeoutExpired:
                outcome = ("timeout", b"", b"")
            outcomes.append(_mask(outcome, tmp))
    return outcomes[0], outcomes[1]


def _mask(outcome, tmp):
    """The outcome with the directory's path as <tmp> and what differs from run to run in any
    interpreter (object addresses, and _PyObject_Dump's reference count and type address when
    printing failed: "lost sys.stderr") masked."""
    status, out, err = outcome
    path = tmp.encode()

    def masked(data):
        data = re.sub(rb" at 0x[0-9a-f]+", b" at 0x?", data.replace(path, b"<tmp>"))
        return re.sub(rb"(object (?:address|refcount|type) *: )\S+", rb"\1?", data)
    return status, masked(out), masked(err)


def served_reference(python_outcome):
    """python3's (stdout, stderr) as a served cell must show them, or None when its run did not
    end with a traceback a cell reports (an error printed last, status 1)."""
    status, out, err = python_outcome
    text = err.decode("utf-8", "surrogateescape")
    # 1, or -2 for an uncaught KeyboardInterrupt (python3 then ends by SIGINT).
    if status not in (1, -2) or "Traceback (most recent call last):\n" not in text and not _is_compile_error(text):
        return None
    return out.decode("utf-8", "replace"), text.replace("<tmp>/prog.py", "<cell-1>")


def _mask_text(text):
    return re.sub(r" at 0x[0-9a-f]+", " at 0x?", text)


def _is_compile_error(text):
    return re.search(r'^  File "<tmp>/prog\.py", line \d+\n', text, re.M) is not None and \
        "Traceback" not in text


def served_outcome(program, kernel, tmp):
    """The program's prog.py run as the first cell of a fresh context whose cwd holds its
    files: (stdout, stderr + the error record's traceback)."""
    _write(program, tmp)
    source = program.files["prog.py"].decode("utf-8", "surrogateescape")
    context = kernel.create_context(cwd=tmp)
    try:
        result = kernel.run_code(source, context=context, timeout=60)
    finally:
        kernel.delete_context(context)
    traceback = result.error.traceback if result.error is not None else "<no error record>"
    return result.stdout, result.stderr + traceback


def served_in_fresh_server(program, pykernel_bin):
    """served_outcome in a server of its own (programs change process-wide state: warning
    filters, hooks, the recursion limit), paths of the files' directory shown as <tmp>."""
    if os.path.dirname(HERE) not in sys.path:
        sys.path.insert(0, os.path.dirname(HERE))  # the client package, when run as a script
    from pykernel import PyKernel
    kernel = PyKernel(pykernel_bin)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = os.path.realpath(tmp)
            out, err = served_outcome(program, kernel, tmp)
            return _mask_text(out.replace(tmp, "<tmp>")), _mask_text(err.replace(tmp, "<tmp>"))
    finally:
        kernel.close()


def divergences(programs, pykernel_bin, merged=False, served=True, workers=2):
    """Runs the programs both ways: ``(run divergences, served divergences, served count)``, a
    run divergence being ``(program, (python3's outcome, pykernel's))`` and a served one
    ``(program, what the cell showed, python3's reference)``."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        pairs = list(pool.map(lambda p: run_both(p, pykernel_bin, merged), programs))
    run_divergences = [(program, pair) for program, pair in zip(programs, pairs) if pair[0] != pair[1]]
    if not served:
        return run_divergences, [], 0
    cases = [(program, served_reference(python_outcome)) for program, (python_outcome, _) in zip(programs, pairs)]
    cases = [(program, reference) for program, reference in cases if program.served and reference is not None]
    with ThreadPoolExecutor(workers) as pool:
        shown = list(pool.map(lambda case: served_in_fresh_server(case[0], pykernel_bin), cases))
    served_divergences = [(program, got, reference) for (program, reference), got in zip(cases, shown)
                          if got != reference]
    return run_divergences, served_divergences, len(cases)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pykernel", required=True)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", help="a directory to write each diverging program to")
    parser.add_argument("--merged", action="store_true", help="stderr into stdout's pipe (2>&1)")
    parser.add_argument("--no-served", action="store_true")
    args = parser.parse_args()
    programs = generate(args.seed, args.count)
    run_divergences, served_divergences, served_count = divergences(
        programs, os.path.abspath(args.pykernel), merged=args.merged, served=not args.no_served)
    print("programs generated: %d (served comparisons: %d)" % (len(programs), served_count))
    print("pykernel run divergences: %d" % len(run_divergences))
    for program, (theirs, ours) in run_divergences:
        print("=" * 30, program.name, "(run)")
        print(program.files["prog.py"].decode("utf-8", "replace"))
        for label, a, b in zip(("status", "stdout", "stderr"), theirs, ours):
            if a != b:
                print("--- %s python3: %r\n+++ %s pykernel: %r" % (label, a[-1500:] if isinstance(a, bytes) else a,
                                                                  label, b[-1500:] if isinstance(b, bytes) else b))
    print("served divergences: %d" % len(served_divergences))
    for program, shown, reference in served_divergences:
        print("=" * 30, program.name, "(served)")
        print(program.files["prog.py"].decode("utf-8", "replace"))
        for label, a, b in zip(("stdout", "stderr+traceback"), reference, shown):
            if a != b:
                print("--- %s python3: %r\n+++ %s served: %r" % (label, a[-1500:], label, b[-1500:]))
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        for program in [p for p, _ in run_divergences] + [p for p, _, _ in served_divergences]:
            directory = os.path.join(args.keep, program.name)
            os.makedirs(directory, exist_ok=True)
            _write(program, directory)
    return 1 if run_divergences or served_divergences else 0


if __name__ == "__main__":
    sys.exit(main())
