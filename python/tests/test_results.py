"""Rich results (issue 12) through the Python client against the real ``pykernel serve``: the last
expression's value, ``display()``, MIME bundles, ordering with output, and the wire shape."""

import base64
import json
import os
import pathlib
import struct
import subprocess
import zlib

import pytest

from pykernel import PyKernel, Result
from pykernel_raw import RawServer


def tiny_png():
    """A valid 1x1 red PNG, made by hand (no PIL)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


PNG_CLASS = (
    "import struct, zlib\n"
    "class Dot:\n"
    "    def _repr_png_(self):\n"
    "        def chunk(kind, data):\n"
    "            return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)\n"
    "        header = struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0)\n"
    "        return (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', header) + chunk(b'IDAT', zlib.compress(b'\\x00\\xff\\x00\\x00'))\n"
    "                + chunk(b'IEND', b''))\n"
    "    def __repr__(self):\n"
    "        return 'Dot()'\n"
)


def test_last_expression_is_the_main_result_and_bound_to_underscore(kernel):
    result = kernel.run_code("x = 20\nx + 22")
    assert result.status == "ok"
    assert result.text == "42"
    [main] = result.results
    assert main.is_main_result and main.data == {"text/plain": "42"} and main.chart is None
    assert kernel.run_code("_ * 2").text == "84"


def test_a_results_text_is_cut_at_max_output_bytes_as_output_is(kernel):
    """The repr of a 3 MB string came back whole (of a 3 GB one, a 3 GB response): past
    `max_output_bytes`, a text representation keeps its head and tail and says what was left
    out; images keep every byte (a cut one would be no image)."""
    result = kernel.run_code("s = 'a' * 3_000_000\ns", max_output_bytes=100)
    assert result.text == "'" + "a" * 49 + "\n[... 2999902 bytes omitted: longer than max_output_bytes ...]\n" + "a" * 49 + "'"
    # A character the cut would split is left out whole.
    assert kernel.run_code("'é' * 50", max_output_bytes=11).text == (
        "'éé\n[... 92 bytes omitted: longer than max_output_bytes ...]\néé'")
    assert kernel.run_code("'b' * 10", max_output_bytes=100).text == "'" + "b" * 10 + "'"
    rich = kernel.run_code(PNG_CLASS + "class Page(Dot):\n    def _repr_html_(self):\n        return '<p>' + 'x' * 1000 + '</p>'\n"
                           "Page()", max_output_bytes=20)
    assert rich.results[0].data["text/html"] == "<p>xxxxxxx\n[... 987 bytes omitted: longer than max_output_bytes ...]\nxxxxxx</p>"
    assert base64.b64decode(rich.results[0].data["image/png"]) == tiny_png()


@pytest.mark.parametrize("isolation", [None, "process"])
def test_every_text_representation_is_cut_at_max_output_bytes(kernel, isolation):
    """Only `text/*` was cut: a 5,000-character `_repr_javascript_`, `_repr_svg_`, an
    `application/xml` or a custom type's text came back whole past `max_output_bytes` (a 100 MB
    one, a 100 MB response). Every text is cut alike; base64 images (SVG aside), PDF and JSON
    types are kept whole, as a cut one would be no image and no JSON."""
    context = kernel.create_context(isolation=isolation)
    code = ("import base64\n"
            "class Many:\n"
            "    def _repr_svg_(self): return '<svg>' + 's' * 5000 + '</svg>'\n"
            "    def _repr_javascript_(self): return 'var a=1;' + 'j' * 5000\n"
            "    def _repr_latex_(self): return '$' + 'l' * 5000 + '$'\n"
            "    def _repr_mimebundle_(self, **kw):\n"
            "        return {'application/x-thing': 'z' * 5000, 'application/xml': '<a>' + 'q' * 5000 + '</a>',\n"
            "                'application/vnd.foo+json': {'k': 'w' * 5000}, 'application/json': ['v' * 5000],\n"
            "                'image/gif': base64.b64encode(b'G' * 5000).decode(), 'application/pdf': b'%PDF' + b'p' * 5000,\n"
            "                'IMAGE/PNG': base64.b64encode(b'P' * 5000).decode(), 'video/mp4': b'M' * 5000,\n"
            "                'application/octet-stream': b'O' * 5000, 'Text/Csv; charset=utf-8': 'c' * 5000}\n"
            "    def __repr__(self): return 'Many()'\n"
            "Many()")
    notified = []
    result = kernel.run_code(code, context=context, max_output_bytes=20, on_result=notified.append)
    assert result.status == "ok", result.error
    [many] = result.results
    assert [r.data for r in notified] == [many.data]

    def cut(text):
        data = text.encode()
        return data[:10].decode() + f"\n[... {len(data) - 20} bytes omitted: longer than max_output_bytes ...]\n" + data[-10:].decode()
    for mime, whole in [("image/svg+xml", "<svg>" + "s" * 5000 + "</svg>"), ("application/javascript", "var a=1;" + "j" * 5000),
                        ("text/latex", "$" + "l" * 5000 + "$"), ("application/x-thing", "z" * 5000),
                        ("application/xml", "<a>" + "q" * 5000 + "</a>")]:
        assert many.data[mime] == cut(whole), mime
    assert many.data["application/vnd.foo+json"] == {"k": "w" * 5000}
    assert many.data["application/json"] == ["v" * 5000]
    assert base64.b64decode(many.data["image/gif"]) == b"G" * 5000
    assert base64.b64decode(many.data["application/pdf"]) == b"%PDF" + b"p" * 5000
    # MIME types without case and parameters; base64 of any binary type.
    assert base64.b64decode(many.data["IMAGE/PNG"]) == b"P" * 5000
    assert base64.b64decode(many.data["video/mp4"]) == b"M" * 5000
    assert base64.b64decode(many.data["application/octet-stream"]) == b"O" * 5000
    assert many.data["Text/Csv; charset=utf-8"] == cut("c" * 5000)
    assert many.data["text/plain"] == "Many()"


@pytest.mark.parametrize("isolation", [None, "process"])
def test_an_error_record_is_cut_at_max_output_bytes(kernel, isolation):
    """A 30 MB message made a 60 MB response (value and traceback) whatever `max_output_bytes`
    said: past it the value keeps its start and the traceback its head and tail (the exception's
    line last), joined by a line saying what was left out, and the record says so. The record
    is made natively (a built-in exception) or by the Python port (a class of the code's)."""
    context = kernel.create_context(isolation=isolation)
    kernel.run_code("class Mine(Exception): pass", context=context)
    for name in ("ValueError", "Mine"):
        message = "x" * 3_000_000 + "\u00e9end"
        ran = kernel.run_code(f"data = 'x' * 3_000_000 + chr(233) + 'end'\nraise {name}(data)", context=context, max_output_bytes=100)
        whole = (f'Traceback (most recent call last):\n  File "<cell-{ran.execution_count}>", line 2, in <module>\n'
                 f"    raise {name}(data)\n{name}: {message}\n").encode()
        error = ran.error
        assert (error.name, error.value, error.value_omitted_bytes, error.truncated) == (name, "x" * 100, len(message.encode()) - 100, True)
        omitted = len(whole) - 100
        assert error.traceback == (whole[:50].decode() + f"\n[... {omitted} bytes omitted: longer than max_output_bytes ...]\n"
                                   + "x" * 44 + "\u00e9end\n"), name
        assert error.traceback_omitted_bytes == omitted
        # A character the cut would split is left out whole.
        split = kernel.run_code(f"raise {name}('\u00e9' * 10)", context=context, max_output_bytes=5).error
        assert (split.value, split.value_omitted_bytes) == ("\u00e9\u00e9", 16)
        # Within the limit the record is whole, and says nothing of a cut.
        small = kernel.run_code(f"raise {name}('x' * 10)", context=context, max_output_bytes=1000).error
        assert (small.value, small.truncated, small.value_omitted_bytes, small.traceback_omitted_bytes) == ("x" * 10, False, 0, 0)
    raw = kernel.call("code.run", {"code": "raise ValueError('y' * 50)", "context": context.id, "max_output_bytes": 10})["error"]
    assert (raw["value"], raw["truncated"], raw["value_omitted_bytes"]) == ("y" * 10, True, 40)
    assert raw["traceback"].endswith("omitted: longer than max_output_bytes ...]\nyyyy\n")
    assert set(kernel.call("code.run", {"code": "raise ValueError('y')", "context": context.id})["error"]) == {"name", "value", "traceback"}


def test_constant_and_docstring_like_values(kernel):
    assert kernel.run_code("1+1").text == "2"
    assert kernel.run_code("'hello'").text == "'hello'"
    assert kernel.run_code("x = 1\n3 * 4  # twelve").text == "12"


def test_no_result_for_statements_none_and_semicolon(kernel):
    for code in ["pass", "x = 1", "None", "print('hi')", "x;", "x  ;  # hidden", "if True:\n    5",
                 "def f():\n    return 1", "import os", "for i in range(2):\n    i", ""]:
        result = kernel.run_code(code)
        assert result.status == "ok", code
        assert result.results == [], code
        assert result.text is None, code


# A cell's last statement after a `;`: its value shows when the line is one of simple statements
# of the module (found from the bytecode), not inside a block, a bracket or a string (the parser
# decides those); `;` at the end hides it. The expected texts are IPython's.
AFTER_SEMICOLON = [
    ("x = 6; x", "6"), ("x = 6; x * 7", "42"), ("x = 1; 2", "2"), ("x = 1; x;", None), ("x = 1; x ;  # c", None),
    ("x = 1;  x", "1"), ("x = 1; y = 2; x + y", "3"), ("import math; math.pi", "3.141592653589793"),
    ("x = {'a': 1}; x['a']", "1"), ("x = 0\nx += 1; x", "1"), ("del_me = 1; del del_me; 5", "5"),
    ("f'{1}'; f'{2}'", "'2'"), ("'doc'; 1", "1"), ("x = '#'; x", "'#'"), ("x = ';'; x", "';'"), ("x = 's;'; x;", None),
    ("x = r'\\''; x", repr("\\'")), ("x = 1  # a ( comment\nx; x", "1"),
    ("while False: pass\nx = 2; x", "2"), ("def f(): return 3\nf(); f()", "3"),
    ("class A: pass\nA.__name__; A.__name__", "'A'"), ("try: x = 1\nexcept: pass\nx; x + 1", "2"),
    # Not a line of the module's simple statements: the value of a statement in a block is not shown.
    ("if True: x = 3; x", None), ("for i in range(2): i; i", None), ("with open('/dev/null') as fh: fh; fh.name", None),
    ("if True:\n    x = 1; x", None), ("if (True and\n True): x = 7; x", None), ("match = 3; match", "3"),
    # A line that continues a bracket, a string or a backslash.
    ("y = (1,\n 2); y", "(1, 2)"), ("x = [\n1]; x", "[1]"), ("s = '''a\nb'''; s", "'a\\nb'"),
    ("x = b'''\n'''; x", "b'\\n'"), ("x = 5; \\\nx", "5"),
    ("async def g(): return 1\nimport asyncio; await g()", "1"),
]


def _run_in_a_fresh_context(kernel, *cells):
    """The results of the cells run in a new namespace context of the kernel, deleted afterwards:
    a case of its own without a server of its own (starting one per case was most of their time)."""
    context = kernel.create_context()
    try:
        return [kernel.run_code(cell, context=context) for cell in cells]
    finally:
        kernel.delete_context(context)


@pytest.mark.parametrize("code, shown", AFTER_SEMICOLON)
def test_the_value_of_a_statement_after_a_semicolon(module_kernel, code, shown):
    (result,) = _run_in_a_fresh_context(module_kernel, code)
    assert result.status == "ok", result.error
    assert result.text == shown


def _shown_by_the_parser(code):
    """IPython's reading of a cell: the repr of its last statement's value when that statement is
    an expression not followed by `;` on its line (None for None), after running the rest."""
    import ast
    tree = ast.parse(code)
    namespace = {}
    last = tree.body[-1]
    rest = code.splitlines()[last.end_lineno - 1].encode()[last.end_col_offset:]
    if type(last) is not ast.Expr or rest.lstrip().startswith(b";"):
        exec(compile(code, "<cell>", "exec"), namespace)
        return None
    exec(compile(ast.Module(tree.body[:-1], []), "<cell>", "exec"), namespace)
    value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
    return None if value is None else repr(value)


def test_the_value_shown_matches_the_parsers_reading_of_random_cells(kernel):
    """Cells mixing `;`, brackets and strings over lines, backslashes, comments and one-line
    compound statements (seeded): the value shown is the one the parser's reading gives."""
    import random
    chooser = random.Random(12)
    simple = ["x = 1", "y = [1,\n 2]", "z = (3\n)", "s = '''a\nb'''", "t = 'q;#('", "u = \"[\"", "v = {'k': (1,\n2)}",
              "x += 1", "pass", "w = 1 \\\n + 2", "# c ( \nq = 2", "'doc'", "f'{1}'", "r = r'\\''", "b = b'x'",
              "m = [i for i in\n range(3)]"]
    expressions = ["x", "x + 1", "(1,\n 2)", "len('a;b')", "[x]", "2", "'s'", "y[0]", "v['k']", "t", "not x", "x if x else 0"]
    compound = ["if x: {}", "for i in range(1): {}", "while False: {}", "try: {}\nexcept: pass", "def g(): {}",
                "class K: {}", "if (x and\n x): {}", "if x:\n    {}"]
    checked = 0
    for _ in range(150):
        parts = [chooser.choice(simple) for _ in range(chooser.randint(0, 2))] + [chooser.choice(expressions)]
        line = "; ".join(parts) + (";" if chooser.random() < 0.3 else "")
        if chooser.random() < 0.3:
            line = chooser.choice(compound).format(line)
        code = "\n".join(["x = 1; y = [1, 2]; v = {'k': 1}; t = 't'"]
                          + [chooser.choice(simple) for _ in range(chooser.randint(0, 2))] + [line])
        try:
            compile(code, "<cell>", "exec")
        except SyntaxError:
            continue  # the pieces do not always make Python
        checked += 1
        result = kernel.run_code(code)
        assert result.status == "ok", (code, result.error)
        assert result.text == _shown_by_the_parser(code), code
    assert checked > 100


def _server_of_kind(pykernel_bin, isolation):
    """A ``pykernel serve`` whose contexts are of the kind `isolation`; checks it exits 0."""
    args = ["--isolation", "process", "--pool-size", "1"] if isolation == "process" else []
    client = PyKernel(pykernel_bin, args=args)
    try:
        yield client
    finally:
        client.close()
    assert client.returncode == 0


@pytest.fixture(scope="module", params=["namespace", "process"])
def isolation_server(pykernel_bin, request):
    """A ``pykernel serve`` whose contexts are namespaces, then one whose are processes, each
    for the module's tests of both kinds."""
    yield from _server_of_kind(pykernel_bin, request.param)


class _InContext:
    """A client whose ``run_code`` runs in one context (the tests' only call)."""

    def __init__(self, client, context):
        self.client, self.context = client, context

    def run_code(self, code, **options):
        return self.client.run_code(code, context=self.context, **options)


@pytest.fixture(params=["namespace", "process"])
def isolated_fresh_server(pykernel_bin, request):
    """A fresh ``pykernel serve`` whose contexts are namespaces, then one whose are processes:
    for a test of what the whole process holds (builtins)."""
    yield from _server_of_kind(pykernel_bin, request.param)


@pytest.fixture
def isolated_kernel(isolation_server):
    """A fresh context of the server's kind (a namespace, then a process of its own): what the
    tests read is their context's (its globals, `_`, its results), not the server's, so a
    context is enough where a fresh server each was most of their time."""
    context = isolation_server.create_context()
    try:
        yield _InContext(isolation_server, context)
    finally:
        isolation_server.delete_context(context)


EXPRESSION_SETUP = ("x, y, s, e, L, n, d = 1, 0, 'abc', '', [1, 2], None, {'k': 1}\n"
                    "f = lambda v: v * 2\n"
                    "async def g(v):\n    return v\n")
# Run after a cell in the same context: the repr of the cell's last expression evaluated on its own.
EVALUATE_AGAIN = ("import ast as _ast, inspect as _inspect\n"
                  "_v = eval(compile({source!r}, '<again>', 'eval', _ast.PyCF_ALLOW_TOP_LEVEL_AWAIT))\n"
                  "if _inspect.iscoroutine(_v):\n    _v = await _v\n"
                  "print(repr(_v))")
# Shapes the compiler gives several ways out (a copy of the cell's end on each branch).
BRANCHING_EXPRESSIONS = [
    "x and 5", "y and 5", "y or 7", "x or 7", "0 < x < 3", "0 < x + 5 < 3", "len(s) > 0 and s.upper()",
    "x if y else s", "x if x else s", "a = 1\na or b", "not x or d", "x and y or L", "y or x and s",
    "1 < x == 1 != 2", "x < 2 < y < 3", "(w := x and 3)", "(lambda v: v and 2 or 3)(y)",
    "[v for v in L if v and x]", "{v: v or 5 for v in (y, x)}", "sum(v for v in L if v > x)",
    "await g(x) if x else 4", "await g(y) or await g(x and 9)", "x and await g(s)",
    "(x and\n 5)", "x and \\\n5", "(y or\n n or\n 'last')", "x if (y or x) else (not L or 3)",
    "[1,\n 2] if y else 6", "d['k'] if 'k' in d else None", "n if x else y", "n or n",
    "e or s[0] < s[1] < s[2]", "x = 1; x and 5", "import math; x and math.pi",
    "".join(f"k{i} = {i}\n" for i in range(300)) + "k1 and k2",  # past 255 constants: EXTENDED_ARG
]


def _expression_atom(chooser, depth):
    if depth > 2 or chooser.random() < 0.3:
        return chooser.choice(["x", "y", "s", "e", "L", "n", "d", "2", "'t'", "f(x)", "s.upper()", "L[0]",
                               "d['k']", "len(s)", "await g(y)", "await g(s)"])
    a, b, c = (_expression_atom(chooser, depth + 1) for _ in range(3))
    return chooser.choice([
        f"{a} and {b}", f"{a} or {b}", f"{a} and {b} or {c}", f"not {a}", f"({a} if {b} else {c})",
        f"{a} if {b} else {c}", f"({a}) < ({b}) < ({c})", f"({a}) == ({b}) != ({c})", f"({a}) not in [{b}, {c}]",
        f"(w := {a})", f"(lambda v: v or {a})({b})", f"[v for v in L if {a}]", f"str({a})", f"({a})",
        f"[{a}, {b}][0]", f"(\n{a} or\n {b})"])


def test_the_value_of_a_last_expression_with_several_ways_out_is_shown_on_each(isolated_kernel):
    """`x = 1\nx and 5` showed nothing (IPython: 5), nor `0 < x < 3`: the compiler copies the
    cell's end onto each branch of a boolean operation, a conditional expression or a chained
    comparison, and only the last copy returned the value. Differential: over fixed and generated
    (seeded) shapes, the value shown is the one the last expression gives evaluated again in the
    same context."""
    import ast
    import random
    kernel = isolated_kernel
    assert kernel.run_code(EXPRESSION_SETUP).status == "ok"
    chooser = random.Random(21)
    cells = list(BRANCHING_EXPRESSIONS) + [_expression_atom(chooser, 0) for _ in range(150)]
    checked = 0
    for cell in cells:
        try:
            compile(cell, "<cell>", "exec", flags=0x2000)  # top-level await allowed
        except SyntaxError:
            continue  # the pieces do not always make Python
        last = "(" + ast.get_source_segment(cell, ast.parse(cell).body[-1]) + ")"
        result = kernel.run_code(cell)
        again = kernel.run_code(EVALUATE_AGAIN.format(source=last))
        if result.status == "error":  # `'abc' < {}`: the same error both times
            assert (again.status, again.error.name) == ("error", result.error.name), cell
            continue
        checked += 1
        assert result.status == "ok" and again.status == "ok", (cell, again.error)
        expected = again.stdout[:-1]
        assert result.text == (None if expected == "None" else expected), cell
        assert [r.is_main_result for r in result.results] == ([] if expected == "None" else [True]), cell
        hidden = kernel.run_code(cell + ";")
        assert hidden.status == "ok" and hidden.results == [], cell
    assert checked > 100


STATEMENTS_ENDING_WITH_BRANCHES = [
    "if y: (\nx)\nelse: (\nx and 5)", "if y: print()\nelse: (\nx\n)", "if x: (\ny or 3)",
    "match x:\n    case 1:\n        x and 5\n    case _:\n        y or 7",
    "match x:\n    case 2:\n        x\n", "from os import path", "from os import (path,\n sep)",
    "import os.path as p", "async def h():\n    return 1\nasync with __import__('contextlib').nullcontext(): x and 5",
    "for v in L: v and 5", "while y: y or 7", "try:\n    x and 5\nexcept Exception:\n    y or 7",
    "with open('/dev/null'): x and 5", "if x: \\\nx and 5",
]


@pytest.mark.parametrize("cell", STATEMENTS_ENDING_WITH_BRANCHES)
def test_a_statement_ending_with_expressions_has_no_value(module_kernel, cell):
    """As IPython: a cell whose last statement is not an expression statement shows nothing, even
    when each of its branches ends with an expression (`if c: (` newline `x)` showed x), nor does
    `from os import path` (it showed the module `os`)."""
    setup, result = _run_in_a_fresh_context(module_kernel, EXPRESSION_SETUP, cell)
    assert setup.status == "ok"
    assert result.status == "ok", result.error
    assert result.results == [], cell


def test_the_value_of_a_cell_of_more_than_255_constants_is_shown(kernel):
    """The implicit `return None` of a cell with more than 255 constants loads its `None` with an
    `EXTENDED_ARG`: the value was lost."""
    setup = "".join(f"c{i} = {i}\n" for i in range(300))
    assert kernel.run_code(setup + "c5").text == "5"
    assert kernel.run_code(setup + "1 + 1").text == "2"
    assert kernel.run_code(setup + "c5 * 2").text == "10"
    assert kernel.run_code(setup + "c5 and c7").text == "7"
    assert kernel.run_code(setup + "(c5 if c0 else\n c9)").text == "9"


def test_display_between_prints_arrives_between_them(kernel):
    events = []
    result = kernel.run_code(
        "print('before')\ndisplay(1, 'two')\nprint('after')\n[3]",
        on_stdout=lambda message: events.append(("stdout", message.text)),
        on_result=lambda r: events.append(("result", r.text, r.is_main_result)))
    assert events == [("stdout", "before\n"), ("result", "1", False), ("result", "'two'", False),
                      ("stdout", "after\n"), ("result", "[3]", True)]
    assert [r.text for r in result.results] == ["1", "'two'", "[3]"]
    assert result.text == "[3]"


def test_display_is_a_builtin_in_every_context(kernel):
    context = kernel.create_context()
    result = kernel.run_code("display({'a': 1})", context=context)
    assert [r.text for r in result.results] == ["{'a': 1}"]
    assert not result.results[0].is_main_result


def test_bundle_holds_every_representation(kernel):
    code = PNG_CLASS + (
        "class Rich(Dot):\n"
        "    def _repr_html_(self): return '<b>rich</b>'\n"
        "    def _repr_markdown_(self): return '**rich**'\n"
        "    def _repr_svg_(self): return '<svg/>'\n"
        "    def _repr_jpeg_(self): return b'\\xff\\xd8jpeg'\n"
        "    def _repr_pdf_(self): return b'%PDF-1.4'\n"
        "    def _repr_latex_(self): return '$x^2$'\n"
        "    def _repr_json_(self): return {'a': [1, 2.5, None]}\n"
        "    def _repr_javascript_(self): return 'alert(1)'\n"
        "Rich()")
    result = kernel.run_code(code)
    assert result.status == "ok", result.error
    [rich] = result.results
    assert isinstance(rich, Result)
    assert rich.text == "Dot()"
    assert rich.html == "<b>rich</b>"
    assert rich.markdown == "**rich**"
    assert rich.svg == "<svg/>"
    assert base64.b64decode(rich.png) == tiny_png()
    assert base64.b64decode(rich.jpeg) == b"\xff\xd8jpeg"
    assert base64.b64decode(rich.pdf) == b"%PDF-1.4"
    assert rich.latex == "$x^2$"
    assert rich.json == {"a": [1, 2.5, None]}
    assert rich.javascript == "alert(1)"


def test_repr_mimebundle_and_metadata(kernel):
    result = kernel.run_code(
        "class B:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return ({'text/html': '<i>b</i>', 'application/json': {'k': 1}, 'application/vnd.k+json': [1],\n"
        "                 'text/x-json': '[2]'}, {'text/html': {'isolated': True}})\n"
        "B()")
    [bundle] = result.results
    assert bundle.html == "<i>b</i>"
    assert bundle.json == {"k": 1}
    # Any `+json` type is JSON on the wire too; other types are strings.
    assert bundle.data["application/vnd.k+json"] == [1]
    assert bundle.data["text/x-json"] == "[2]"
    assert bundle.metadata == {"text/html": {"isolated": True}}
    assert bundle.text.startswith("<__main__.B object at")


def test_raising_representation_is_left_out_with_a_line_on_stderr(kernel):
    result = kernel.run_code(
        "class H:\n    def _repr_html_(self): raise ValueError('no html')\n    def __repr__(self): return 'H'\nH()")
    assert result.status == "ok"
    assert [r.data for r in result.results] == [{"text/plain": "H"}]
    assert result.stderr.count("\n") == 1
    assert "_repr_html_" in result.stderr and "ValueError" in result.stderr


def test_a_representation_of_a_type_ipython_refuses_is_left_out_with_a_line_on_stderr(kernel):
    """As IPython's formatters check what `_repr_*_` returns (a `_repr_png_` returning an int was
    sent as `image/png` "12345"; a `_repr_json_` with NaN changed its JSON value into a string)."""
    result = kernel.run_code(
        "class F:\n"
        "    def _repr_png_(self): return 12345\n"
        "    def _repr_html_(self): return 5\n"
        "    def _repr_json_(self): return {'a': float('nan')}\n"
        "    def _repr_markdown_(self): return '*kept*'\n"
        "    def __repr__(self): return 'F'\n"
        "class G:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None): return {'application/json': [float('inf')]}\n"
        "    def __repr__(self): return 'G'\n"
        "class D:\n"
        "    def _repr_json_(self):\n"
        "        nested = []\n"
        "        for _ in range(100000): nested = [nested]\n"
        "        return nested\n"
        "    def __repr__(self): return 'D'\n"
        "display(F(), G(), D())")
    assert result.status == "ok"
    assert [r.data for r in result.results] == [{"text/plain": "F", "text/markdown": "*kept*"}, {"text/plain": "G"}, {"text/plain": "D"}]
    assert result.stderr.splitlines() == [
        "F._repr_html_() returned int, not str; that representation is left out",
        "F._repr_png_() returned int, not bytes or str; that representation is left out",
        "F._repr_json_() returned a value that is not JSON (NaN, an infinity, a set or another object JSON cannot hold, such a key, or nesting too deep); "
        "that representation is left out",
        "G._repr_mimebundle_() returned a value that is not JSON (NaN, an infinity, a set or another object JSON cannot hold, such a key, or nesting too deep) "
        "for application/json; that representation is left out",
        "D._repr_json_() returned a value that is not JSON (NaN, an infinity, a set or another object JSON cannot hold, such a key, or nesting too deep); "
        "that representation is left out",
    ]


def test_a_repr_mimebundle_value_ipython_refuses_is_left_out_with_a_line_on_stderr(isolated_kernel):
    """A `_repr_mimebundle_` returning neither a dict nor a (dict, dict) pair (a 3-tuple, a
    list) was dropped without a word; metadata that is not a dict too (its data is kept)."""
    bodies = ["({'text/html': '<i>x</i>'}, {}, 'extra')", "['text/html', '<i>x</i>']", "(['text/html'], {})",
              "({'text/html': '<i>kept</i>'}, 'meta')", "({'text/html': '<i>none</i>'}, None)"]
    code = "".join(f"class M{i}:\n    def _repr_mimebundle_(self, include=None, exclude=None): return {body}\n"
                   f"    def __repr__(self): return 'M{i}'\n" for i, body in enumerate(bodies))
    result = isolated_kernel.run_code(code + "display(" + ", ".join(f"M{i}()" for i in range(len(bodies))) + ")")
    assert result.status == "ok", result.error
    assert [(r.data, r.metadata) for r in result.results] == [
        ({"text/plain": "M0"}, {}), ({"text/plain": "M1"}, {}), ({"text/plain": "M2"}, {}),
        ({"text/plain": "M3", "text/html": "<i>kept</i>"}, {}), ({"text/plain": "M4", "text/html": "<i>none</i>"}, {})]
    assert result.stderr.splitlines() == [
        "M0._repr_mimebundle_() returned a tuple of 3 items, not a dict or a (dict, dict) pair; that representation is left out",
        "M1._repr_mimebundle_() returned list, not a dict or a (dict, dict) pair; that representation is left out",
        "M2._repr_mimebundle_() returned a (list, dict) pair, not a dict or a (dict, dict) pair; that representation is left out",
        "M3._repr_mimebundle_() returned str as its metadata, not dict; that metadata is left out",
    ]


NOT_JSON = "a value that is not JSON (NaN, an infinity, a set or another object JSON cannot hold, such a key, or nesting too deep)"


def test_json_representations_hold_json_values_and_other_types_text(isolated_kernel):
    """A `_repr_json_` holding a set or an object was sent as their reprs' text (`json.dumps(...,
    default=repr)`), and a dict under a type that is not JSON as its Python repr: both are left
    out with a line on stderr, with their metadata; `application/json` and every `+json` type
    are JSON values on the wire, the other types text."""
    result = isolated_kernel.run_code(
        "class J:\n"
        "    def _repr_json_(self): return {'s': {1, 2}}, {'expanded': True}\n"
        "    def _repr_html_(self): return '<b>j</b>', {'isolated': True}\n"
        "    def __repr__(self): return 'J'\n"
        "class O:\n"
        "    def _repr_json_(self): return [object()]\n"
        "    def __repr__(self): return 'O'\n"
        "class M:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return ({'application/x-custom': {'k': [1]}, 'text/x-number': 5, 'application/vnd.plot+json': {'data': [1]},\n"
        "                 'application/geo+json': {'type': 'Point', 'coordinates': (1, 2)}, 'application/vnd.bad+json': {1, 2},\n"
        "                 'application/vnd.text+json': 'a string'},\n"
        "                {'application/x-custom': {'m': 1}, 'application/vnd.plot+json': {'m': 2}, 'source': 'm'})\n"
        "    def __repr__(self): return 'M'\n"
        "display(J(), O(), M())\n"
        "display({'text/plain': 'raw', 'application/x-custom': {'k': 1}, 'application/vnd.v+json': {'k': 1}}, raw=True)")
    assert result.status == "ok", result.error
    assert [(r.data, r.metadata) for r in result.results] == [
        ({"text/plain": "J", "text/html": "<b>j</b>"}, {"text/html": {"isolated": True}}),
        ({"text/plain": "O"}, {}),
        ({"text/plain": "M", "application/vnd.plot+json": {"data": [1]}, "application/geo+json": {"type": "Point", "coordinates": [1, 2]},
          "application/vnd.text+json": "a string"}, {"application/vnd.plot+json": {"m": 2}, "source": "m"}),
        ({"text/plain": "raw", "application/vnd.v+json": {"k": 1}}, {}),
    ]
    assert result.stderr.splitlines() == [
        f"J._repr_json_() returned {NOT_JSON}; that representation is left out",
        f"O._repr_json_() returned {NOT_JSON}; that representation is left out",
        "M._repr_mimebundle_() returned dict, not str, for application/x-custom; that representation is left out",
        "M._repr_mimebundle_() returned int, not str, for text/x-number; that representation is left out",
        f"M._repr_mimebundle_() returned {NOT_JSON} for application/vnd.bad+json; that representation is left out",
        "display() got dict, not str, for application/x-custom; that representation is left out",
    ]


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_numbers_of_json_representations_and_metadata_arrive_as_python_wrote_them(pykernel_bin, isolation):
    """An integer past 64 bits in a `_repr_json_`, a bundle `display(..., raw=True)` published
    or `display(..., metadata=...)` arrived as a float (`1.2345678901234568e+22`: the engine
    read the JSON Python wrote with 64-bit integers); every number now goes out as Python's
    `json.dumps` wrote it (a float's text too: `1000000000000000.0`, not `1e+15`)."""
    code = ("class J:\n"
            "    def _repr_json_(self): return {'id': 12345678901234567890123, 'u64': 2**64 + 1, 'f': 1e15}\n"
            "display({'text/plain': 'n', 'application/vnd.n+json': [-2**70, 0.5]}, raw=True)\n"
            "display('m', metadata={'big': 2**64 + 1, 'small': 7})\n"
            "J()")
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "code.run", "params": {"code": code}}) + "\n"
    served = subprocess.run([pykernel_bin, "serve", "--isolation", isolation], input=request, capture_output=True,
                            text=True, timeout=60)
    # A float read as its text: what the line says, not only the value it denotes.
    messages = [json.loads(line, parse_float=lambda text: ("float", text)) for line in served.stdout.splitlines()]
    [response] = [message for message in messages if message.get("id") == 1]
    raw, meta, main = response["result"]["results"]
    assert raw["data"]["application/vnd.n+json"] == [-2**70, ("float", "0.5")]
    assert meta["metadata"] == {"big": 2**64 + 1, "small": 7}
    assert main["data"]["application/json"] == {"id": 12345678901234567890123, "u64": 2**64 + 1, "f": ("float", "1000000000000000.0")}
    notified = [message["params"]["result"] for message in messages if message.get("method") == "code.result"]
    assert notified == [raw, meta, main]


def test_a_main_result_leaves_an_underscore_the_code_bound_alone(isolated_kernel):
    """`_ = gettext.gettext`, then a cell showing a value, made `_('text')` fail (`_` was bound to
    every main result): as IPython's display hook, a main result is bound to `_` only when the
    context has no `_` or its `_` is still the main result bound last."""
    kernel = isolated_kernel
    assert kernel.run_code("import gettext\n_ = gettext.gettext").status == "ok"
    assert kernel.run_code("1 + 1").text == "2"
    assert kernel.run_code("x = [3]\nx").text == "[3]"  # natively shown (a plain type) and not
    assert kernel.run_code("import fractions\nfractions.Fraction(1, 2)").text == "Fraction(1, 2)"
    assert kernel.run_code("_('hello')").text == "'hello'"
    # `_('hello')` was shown, but `_` stayed the code's; once it is deleted, main results bind it again.
    assert kernel.run_code("_ is gettext.gettext").text == "True"
    assert kernel.run_code("del _\n40 + 2").text == "42"
    assert kernel.run_code("_").text == "42"
    assert kernel.run_code("[_, 'next']").text == "[42, 'next']"
    assert kernel.run_code("_").text == "[42, 'next']"
    # Bound by the code to a value equal to the last main result, `_` is the code's all the same.
    assert kernel.run_code("_ = [42, 'next']\n5").text == "5"
    assert kernel.run_code("_").text == "[42, 'next']"


def test_a_main_result_does_not_hide_an_underscore_of_builtins(isolated_fresh_server):
    """`gettext.install()` puts `_` in `builtins`: as IPython's display hook, main results are then
    not bound to `_` (a global `_` would hide the translation function from every later cell)."""
    kernel = isolated_fresh_server
    assert kernel.run_code("import gettext\ngettext.install('pykernel-test')").status == "ok"
    assert kernel.run_code("6 * 7").text == "42"
    assert kernel.run_code("_('hello')").text == "'hello'"
    assert kernel.run_code("'_' in globals()").text == "False"
    # Once `builtins._` is gone, main results bind `_` again.
    assert kernel.run_code("import builtins\ndel builtins._\n40 + 2").text == "42"
    assert kernel.run_code("_").text == "42"


def test_the_main_result_bound_to_underscore_is_not_kept_once_underscore_is_rebound(isolated_kernel):
    """The engine holds the main result it bound to `_` (to tell the code's own `_` from it): let
    go of at the end of the run that binds `_` (or deletes it), so the value is freed when
    nothing else holds it."""
    kernel = isolated_kernel
    kernel.run_code("import gc, weakref\nclass Big:\n    pass\n"
                    "def watched():\n    global ref\n    big = Big()\n    ref = weakref.ref(big)\n    return big")
    assert kernel.run_code("watched()").text.startswith("<__main__.Big object")
    assert kernel.run_code("ref() is _").text == "True"
    assert kernel.run_code("_ = None").status == "ok"
    assert kernel.run_code("gc.collect()\nref() is None").text == "True"
    assert kernel.run_code("watched()\n").status == "ok"
    assert kernel.run_code("del _").status == "ok"
    assert kernel.run_code("gc.collect()\nref() is None").text == "True"


def test_the_main_result_bound_to_underscore_is_freed_with_its_context(kernel):
    """A deleted namespace context's `_` is freed with it (the engine holds it no longer)."""
    other = kernel.create_context()
    assert kernel.run_code("class Big:\n    pass\nBig()", context=other).text.startswith("<__main__.Big object")
    assert kernel.run_code("import weakref, builtins\nbuiltins.big_refs = [weakref.ref(_)]", context=other).status == "ok"
    kernel.delete_context(other)
    # The deletion is the interpreter's next job: this run comes after it.
    assert kernel.run_code("import builtins, gc\ngc.collect()\nbuiltins.big_refs[0]() is None").text == "True"


def test_raising_repr_is_an_error(kernel):
    result = kernel.run_code("class R:\n    def __repr__(self):\n        raise KeyError('bad')\nR()")
    assert result.status == "error"
    assert result.error.name == "KeyError"
    assert result.results == []
    assert result.error.traceback == (
        "Traceback (most recent call last):\n"
        '  File "<cell-1>", line 3, in __repr__\n'
        "    raise KeyError('bad')\n"
        "KeyError: 'bad'\n")


def test_a_raising_repr_whose_exception_cannot_be_shown_is_an_error_as_python3_prints_it(kernel):
    # The exception's __str__ raises SystemExit: python3's printer shows "<exception str() failed>"
    # (the record was "SystemError: PyKernel engine failure: SystemExit: 3").
    result = kernel.run_code("class E(Exception):\n    def __str__(self):\n        raise SystemExit(3)\n"
                             "class R:\n    def __repr__(self):\n        raise E()\nR()")
    assert (result.status, result.results) == ("error", [])
    assert (result.error.name, result.error.value) == ("E", "<exception str() failed>")
    assert result.error.traceback == (
        'Traceback (most recent call last):\n  File "<cell-1>", line 6, in __repr__\n    raise E()\n'
        "E: <exception str() failed>\n")


def test_a_raising_repr_whose_exception_hides_its_attributes_is_an_error(kernel):
    # Its traceback is read as python3 reads it, not by attribute (the record was a chained
    # "AttributeError: __traceback__" raised by the engine).
    result = kernel.run_code("class E(Exception):\n    def __getattribute__(self, name):\n        raise AttributeError(name)\n"
                             "class R:\n    def __repr__(self):\n        raise E('hidden')\nR()")
    assert (result.status, result.results, result.error.name, result.error.value) == ("error", [], "E", "hidden")
    assert result.error.traceback == (
        'Traceback (most recent call last):\n  File "<cell-1>", line 6, in __repr__\n'
        "    raise E('hidden')\nE: hidden\n")


def test_a_repr_that_raises_in_display_shows_its_own_frame(kernel):
    # The engine's display frames are cut, the code's __repr__ after them stays (it was cut too).
    kernel.run_code("class R:\n    def __repr__(self):\n        raise KeyError('bad')\n")
    result = kernel.run_code("display(R())")
    assert result.error.traceback == (
        'Traceback (most recent call last):\n  File "<cell-2>", line 1, in <module>\n    display(R())\n'
        '  File "<cell-1>", line 3, in __repr__\n    raise KeyError(\'bad\')\nKeyError: \'bad\'\n')


def test_an_object_claiming_every_attribute_is_shown_as_its_repr(kernel):
    # As IPython: a Mock's or proxy's representation methods are not called (they were: the mock
    # recorded the calls, stderr got nine lines, and a catch-all made up an image/png).
    result = kernel.run_code("from unittest.mock import MagicMock\nm = MagicMock(name='m')\nm")
    [shown] = result.results
    assert result.stderr == "" and list(shown.data) == ["text/plain"] and shown.data["text/plain"].startswith("<MagicMock name='m' id=")
    assert kernel.run_code("print(m.mock_calls)").stdout == "[]\n"
    anything = kernel.run_code("class Any:\n    def __getattr__(self, name):\n        return lambda *a, **k: 'x'\n"
                               "    def __repr__(self):\n        return 'Any()'\nAny()")
    assert [r.data for r in anything.results] == [{"text/plain": "Any()"}] and anything.stderr == ""


def test_binary_text_that_is_not_base64_is_left_out(kernel):
    result = kernel.run_code("class G:\n    def _repr_png_(self):\n        return 'not base64 !!!'\n"
                             "    def __repr__(self):\n        return 'G()'\nG()")
    assert [r.data for r in result.results] == [{"text/plain": "G()"}]
    assert result.stderr == "G._repr_png_() returned text that is not base64; that representation is left out\n"
    valid = kernel.run_code(f"class H:\n    def _repr_png_(self):\n        return {base64.b64encode(tiny_png()).decode()!r}\nH()")
    assert "image/png" in valid.results[0].data


def test_base64_with_line_breaks_is_taken_as_one_base64_string(kernel):
    """`base64.encodebytes`/`b2a_base64` text (line breaks, a final newline: how notebooks store
    images) is base64 to IPython and Jupyter: kept, without its whitespace (it was left out)."""
    png = tiny_png()
    code = ("import base64, binascii\n"
            f"png = {png!r}\n"
            "display({'image/png': binascii.b2a_base64(png).decode()}, raw=True)\n"
            "class P:\n    def _repr_png_(self):\n        return base64.encodebytes(png * 20).decode()\n"
            "    def __repr__(self):\n        return 'P()'\nP()")
    result = kernel.run_code(code)
    assert result.stderr == ""
    assert [r.data["image/png"] for r in result.results] == [
        base64.b64encode(png).decode(), base64.b64encode(png * 20).decode()]


def test_the_builtin_display_takes_include_exclude_and_metadata(kernel):
    code = ("class MB:\n    def _repr_mimebundle_(self, include=None, exclude=None):\n"
            "        print('asked', include, exclude)\n"
            "        return {'text/html': '<b>x</b>', 'text/markdown': '**x**'}, {'text/html': {'k': 1}}\n"
            "    def __repr__(self):\n        return 'MB()'\n"
            "display(MB(), exclude=['text/html'])\ndisplay(MB(), include=['text/html'], metadata={'a': 1})")
    result = kernel.run_code(code)
    assert result.stdout == "asked None ['text/html']\nasked ['text/html'] None\n"
    first, second = result.results
    assert (sorted(first.data), first.metadata) == (["text/markdown", "text/plain"], {})
    assert (sorted(second.data), second.metadata) == (["text/html", "text/plain"], {"text/html": {"k": 1}, "a": 1})


def test_exception_in_the_last_expression_keeps_its_traceback(kernel):
    result = kernel.run_code("x = 0\n1 / x")
    assert result.status == "error"
    assert result.results == []
    assert result.error.traceback == (
        "Traceback (most recent call last):\n"
        '  File "<cell-1>", line 2, in <module>\n'
        "    1 / x\n"
        "    ~~^~~\n"
        "ZeroDivisionError: division by zero\n")


def test_last_expression_runs_once(kernel):
    result = kernel.run_code("calls = []\ndef f():\n    calls.append(1)\n    return len(calls)\nf()")
    assert result.text == "1"
    assert kernel.run_code("calls").text == "[1]"


def test_wire_shape(raw):
    response = raw.call("code.run", {"code": "print('a')\n{'k': [1, 2]}"})
    notes = raw.notifications(response["id"])
    assert [m["method"] for m in notes] == ["code.output", "code.result"]
    note = notes[1]["params"]
    assert note == {"request_id": response["id"], "result": {
        "is_main_result": True, "data": {"text/plain": "{'k': [1, 2]}"}, "metadata": {}, "chart": None}}
    assert response["result"]["results"] == [note["result"]]


def test_large_image_result(kernel):
    payload = bytes(range(256)) * (20 * 4096)  # 20 MiB
    result = kernel.run_code(
        "class Big:\n    def _repr_png_(self):\n        return bytes(range(256)) * (20 * 4096)\nBig()", timeout=120)
    assert result.status == "ok"
    assert base64.b64decode(result.results[0].png) == payload


def test_results_from_a_thread_go_to_the_run(kernel):
    result = kernel.run_code("import threading\nt = threading.Thread(target=display, args=('t',))\nt.start()\nt.join()")
    assert [r.text for r in result.results] == ["'t'"]


def test_edge_cases_of_the_last_statement(kernel):
    cases = {"x = 1; 7": "7", "[3].pop(); 5": "5", "[3].pop(); [4].pop()": "4", "x = 1\n(1,\n 2)": "(1, 2)",
             "match = [1]\nmatch": "[1]", "with_ = 4\nwith_": "4", "'a' 'b'": "'ab'", "-5": "-5",
             "y = 2  # a; b\ny  # c; d": "2", "y\\\n+ 1": "3"}
    for code, text in cases.items():
        assert kernel.run_code(code).text == text, code
    for code in ["global q", "if False:\n    5", "if True: \\\n    5", "x = 3\nx ;", "1+1 ;  # hidden",
                 "x\\\n;", "x \\\n  \\\n ;", "x\\\r\n;", "x = 5\r(x +\r 1);",
                 # Characters str.splitlines() splits at and the compiler does not: the `;` is found
                 # on the statement's own line.
                 "y = 0  # \x0c\nx = 5\n(x +\n 1);", "s = '\u2028\x85'\nx = 5\n(x +\n 1);",
                 "with open('/dev/null') as f:\n    f", "match 1:\n    case 1:\n        pass"]:
        result = kernel.run_code(code)
        assert result.status == "ok" and result.results == [], code


def test_values_of_exact_builtin_types_show_their_repr(kernel):
    """Values of an exact built-in type take the engine's native path; their bundle is their repr."""
    cases = {"True": "True", "3.5": "3.5", "1j": "1j", "b'\\x00'": "b'\\x00'", "frozenset()": "frozenset()",
             "range(3)": "range(0, 3)", "{1: 'a'}": "{1: 'a'}", "x = 'é'\nx": "'é'", "(1, [2], {3})": "(1, [2], {3})",
             "a = [1]\na.append(a)\na": "[1, [...]]", "d = {}\nd['d'] = d\nd": "{'d': {...}}"}
    for code, text in cases.items():
        result = kernel.run_code(code)
        assert result.status == "ok", code
        assert [(r.is_main_result, r.data) for r in result.results] == [(True, {"text/plain": text})], code
        assert kernel.run_code("repr(_)").text == repr(text), code


def test_only_the_value_itself_is_asked_for_representations(kernel):
    """A subclass of a built-in type keeps its representations; a container's items are not asked
    (as IPython)."""
    result = kernel.run_code("class I(int):\n    def _repr_html_(self): return '<b>i</b>'\nI(3)")
    assert [r.data for r in result.results] == [{"text/html": "<b>i</b>", "text/plain": "3"}]
    result = kernel.run_code(
        "class H:\n    def _repr_html_(self): return '<b>h</b>'\n    def __repr__(self): return 'H()'\n[H(), (H(),)]")
    assert [r.data for r in result.results] == [{"text/plain": "[H(), (H(),)]"}]
    assert kernel.run_code("class S(str):\n    pass\nS('s')").results[0].data == {"text/plain": "'s'"}


def test_a_failing_repr_of_a_builtin_value_is_an_error(kernel):
    result = kernel.run_code("n = 10**5000\nn")
    assert result.status == "error" and result.results == []
    assert result.error.traceback == (
        "ValueError: Exceeds the limit (4300 digits) for integer string conversion; "
        "use sys.set_int_max_str_digits() to increase the limit\n")
    assert kernel.run_code("_ == n").text == "True"  # `_` was bound before the repr failed
    assert kernel.run_code("n;").results == []
    result = kernel.run_code("class R:\n    def __repr__(self): raise KeyError('bad')\n[1, R()]")
    assert result.status == "error" and result.results == []
    assert result.error.traceback == (
        "Traceback (most recent call last):\n"
        '  File "<cell-4>", line 2, in __repr__\n'
        "    def __repr__(self): raise KeyError('bad')\n"
        "                        ^^^^^^^^^^^^^^^^^^^^^\n"
        "KeyError: 'bad'\n")


# ---------------------------------------------------------------- IPython.display (IPython installed)


@pytest.fixture
def ipython_kernel(pykernel_bin, request):
    """``pykernel serve --venv`` on the environment ``scripts/setup`` makes (``.venv-rich``, with
    IPython); each case runs in a namespace and in a process context."""
    venv = os.environ.get("PYKERNEL_RICH_VENV", str(pathlib.Path(__file__).resolve().parents[2] / ".venv-rich"))
    assert os.path.exists(os.path.join(venv, "bin", "python")), f"{venv} is missing: run scripts/setup"
    client = PyKernel(binary=pykernel_bin, args=["--venv", venv, "--isolation", request.param])
    try:
        yield client
    finally:
        client.close()


both_kinds = pytest.mark.parametrize("ipython_kernel", ["namespace", "process"], indirect=True)


@both_kinds
def test_ipython_display_objects_are_results_in_order_with_output(ipython_kernel):
    png = base64.b64encode(tiny_png()).decode("ascii")
    result = ipython_kernel.run_code(
        "import base64\n"
        "from IPython.display import display, HTML, Markdown, Image, JSON\n"
        "print('first')\n"
        "display(HTML('<b>bold</b>'), Markdown('*md*'))\n"
        "print('second')\n"
        f"display(Image(data=base64.b64decode('{png}'), format='png'))\n"
        "display(JSON({'a': [1, 2]}))\n"
        "display({'text/plain': 'raw text', 'text/html': '<i>raw</i>'}, raw=True)\n"
        "Markdown('# last')\n", timeout=120)
    assert result.status == "ok", result.error and result.error.traceback
    assert result.stdout == "first\nsecond\n", "nothing printed by IPython's fallback"
    html, markdown, image, data, raw, last = result.results
    assert html.html == "<b>bold</b>" and not html.is_main_result
    assert markdown.markdown == "*md*"
    assert base64.b64decode(image.png) == tiny_png()
    assert data.json == {"a": [1, 2]}
    assert (raw.text, raw.html) == ("raw text", "<i>raw</i>")
    assert last.is_main_result and last.markdown == "# last"


@both_kinds
def test_ipython_display_include_exclude_metadata_and_publish_display_data(ipython_kernel):
    events = []
    result = ipython_kernel.run_code(
        "from IPython.display import display, HTML, publish_display_data\n"
        "class Both:\n"
        "    def _repr_html_(self): return '<p>h</p>'\n"
        "    def _repr_markdown_(self): return 'm'\n"
        "    def __repr__(self): return 'Both()'\n"
        "display(Both(), exclude=['text/html'], metadata={'source': 'test'})\n"
        "display(Both(), include=['text/html'])\n"
        "publish_display_data({'text/plain': 'published', 'text/markdown': '**p**'}, metadata={'k': 1})\n",
        on_result=events.append, timeout=120)
    assert result.status == "ok", result.error and result.error.traceback
    excluded, included, published = result.results
    assert excluded.data == {"text/plain": "Both()", "text/markdown": "m"}
    assert excluded.metadata == {"source": "test"}
    assert included.data == {"text/plain": "Both()", "text/html": "<p>h</p>"}
    assert published.data == {"text/plain": "published", "text/markdown": "**p**"} and published.metadata == {"k": 1}
    assert [r.data for r in events] == [r.data for r in result.results], "streamed as code.result"


@both_kinds
def test_display_merges_metadata_and_filters_types_of_every_object(ipython_kernel):
    """`display(5, metadata={'a': 1})` (a value of a built-in type) and `display(fig, ...)` (a
    matplotlib figure) dropped the metadata and ignored `include`/`exclude`. As IPython: the
    metadata is merged over the representations' own, dicts key by key; metadata that is no dict
    is ignored."""
    result = ipython_kernel.run_code(
        "import matplotlib.pyplot as plt\n"
        "from IPython.display import display as ipython_display\n"
        "class C:\n    def __repr__(self): return 'C()'\n"
        "class M:\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return {'text/html': '<b>m</b>'}, {'text/html': {'k': 1}}\n"
        "    def __repr__(self): return 'M()'\n"
        "display(5, metadata={'a': 1})\n"
        "display('s', [1], metadata={'a': 1})\n"
        "ipython_display(C(), {'k': 2}, metadata={'a': 1})\n"
        "fig = plt.figure(); plt.plot([1, 2])\n"
        "display(fig, metadata={'image/png': {'width': 10}})\n"
        "display(fig, exclude=['image/png'])\n"
        "ipython_display(fig, include=['text/plain'], metadata={'a': 2}); plt.close(fig)\n"
        "display(M(), metadata={'text/html': {'isolated': True}, 'a': 3})\n"
        "display(M(), exclude=['text/html'], metadata={'a': 4})\n"
        "display(5, metadata=['not', 'a', 'dict'])\n", timeout=120)
    assert result.status == "ok", result.error and result.error.traceback
    shown = [(sorted(r.data), r.metadata, r.chart is not None) for r in result.results]
    assert shown == [
        (["text/plain"], {"a": 1}, False),
        (["text/plain"], {"a": 1}, False), (["text/plain"], {"a": 1}, False),
        (["text/plain"], {"a": 1}, False), (["text/plain"], {"a": 1}, False),
        (["image/png", "text/plain"], {"image/png": {"width": 10}}, True),
        (["text/plain"], {}, True),
        (["text/plain"], {"a": 2}, True),
        (["text/html", "text/plain"], {"text/html": {"k": 1, "isolated": True}, "a": 3}, False),
        (["text/plain"], {"a": 4}, False),
        (["text/plain"], {}, False),
    ]
    assert [r.text for r in result.results[:5]] == ["5", "'s'", "[1]", "C()", "{'k': 2}"]


@both_kinds
def test_an_object_with_ipython_display_shows_itself(ipython_kernel):
    """As IPython: an object's `_ipython_display_()` is called instead of formatting it (before
    `_repr_mimebundle_`), for `display()` and for the last expression's value (still bound to
    `_`); what it displays are the results (`IPython.display.GeoJSON` shows
    `application/geo+json`). It was never called: the object showed as its repr."""
    events = []

    def printed(message):  # output chunks written in a row may come as one
        if events and isinstance(events[-1], str):
            events[-1] += message.text
        else:
            events.append(message.text)

    result = ipython_kernel.run_code(
        "from IPython.display import GeoJSON, display as ipython_display\n"
        "class W:\n"
        "    def _ipython_display_(self):\n"
        "        print('showing')\n"
        "        display({'text/html': '<b>custom</b>', 'text/plain': 'custom'}, raw=True)\n"
        "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
        "        return {'text/html': 'never'}\n"
        "class Silent:\n"
        "    def _ipython_display_(self):\n"
        "        pass\n"
        "print('before')\n"
        "display(W(), Silent(), metadata={'a': 1})\n"
        "ipython_display(GeoJSON({'type': 'Point', 'coordinates': [1, 2]}))\n"
        "W()", on_stdout=printed, on_result=lambda r: events.append((r.text, r.is_main_result)),
        timeout=120)
    assert result.status == "ok", result.error and result.error.traceback
    assert events == ["before\nshowing\n", ("custom", False), ("<IPython.display.GeoJSON object>", False),
                      "showing\n", ("custom", False)]
    assert result.results[0].html == "<b>custom</b>"
    assert result.results[1].data["application/geo+json"] == {"type": "Point", "coordinates": [1, 2]}
    assert result.text is None, "no main result"
    assert ipython_kernel.run_code("type(_).__name__").text == "'W'", "the value is bound to _"


def test_a_raising_ipython_display_shows_the_object_from_its_representations(isolated_kernel):
    result = isolated_kernel.run_code(
        "class R:\n"
        "    def _ipython_display_(self):\n"
        "        raise ValueError('no')\n"
        "    def _repr_html_(self):\n"
        "        return '<i>r</i>'\n"
        "    def __repr__(self):\n"
        "        return 'R()'\n"
        "class N(R):\n"
        "    def _ipython_display_(self):\n"
        "        raise NotImplementedError\n"
        "display(R())\nN()")
    assert result.status == "ok", result.error
    assert [(r.data, r.is_main_result) for r in result.results] == [
        ({"text/plain": "R()", "text/html": "<i>r</i>"}, False), ({"text/plain": "R()", "text/html": "<i>r</i>"}, True)]
    assert result.stderr == "R._ipython_display_() raised ValueError: no; the object is shown from its representations\n"


DISPLAY_HANDLES = (
    "h = display('first', display_id=True)\n"
    "print(repr(h) == f'<DisplayHandle display_id={h.display_id}>', len(h.display_id))\n"
    "h.update('second')\n"
    "h.display('third')\n"
    "print(display(1, display_id='mine').display_id, display(2))\n")


def test_display_with_a_display_id_returns_a_handle_whose_updates_are_new_results(isolated_kernel):
    """`display(..., display_id=True)` returned None, so `h.update(...)` raised AttributeError:
    it returns a handle, as IPython's; with no display updates on the wire, an update is one
    more result."""
    result = isolated_kernel.run_code(DISPLAY_HANDLES)
    assert result.status == "ok", result.error
    assert result.stdout == "True 32\nmine None\n"
    assert [(r.text, r.is_main_result) for r in result.results] == [
        ("'first'", False), ("'second'", False), ("'third'", False), ("1", False), ("2", False)]


PRETTY_CLASSES = (
    "class P:\n"
    "    def _repr_pretty_(self, p, cycle):\n"
    "        with p.group(1, '[', ']'):\n"
    "            p.text('pretty')\n"
    "            p.breakable()\n"
    "            p.pretty(['a', 2])\n"
    "class Node:\n"
    "    def __init__(self):\n"
    "        self.child = self\n"
    "    def _repr_pretty_(self, p, cycle):\n"
    "        if cycle:\n"
    "            return p.text('Node(...)')\n"
    "        p.text('Node(')\n"
    "        p.pretty(self.child)\n"
    "        p.text(')')\n"
    "class Q(P):\n"
    "    def __repr__(self):\n"
    "        return 'Q()'\n"
    "class Broken:\n"
    "    def _repr_pretty_(self, p, cycle):\n"
    "        raise ValueError('no')\n"
    "    def __repr__(self):\n"
    "        return 'Broken()'\n"
    "class Both:\n"
    "    def _repr_pretty_(self, p, cycle):\n"
    "        p.text('pretty')\n"
    "    def _repr_mimebundle_(self, include=None, exclude=None):\n"
    "        return {'text/plain': 'bundled'}\n"
    "display(P(), Node(), Q(), Broken(), Both())\n")
PRETTY_TEXTS = ["[pretty ['a', 2]]", "Node(Node(...))", "Q()", "Broken()", "bundled"]


def test_repr_pretty_makes_the_text_as_in_ipython(isolated_kernel):
    """IPython's text/plain of an object whose class defines `_repr_pretty_` is what that method
    prints (the object's repr was shown); without IPython, a printer of the same interface prints
    it on one line."""
    result = isolated_kernel.run_code(PRETTY_CLASSES + "P()")
    assert [r.text for r in result.results] == PRETTY_TEXTS + ["[pretty ['a', 2]]"]
    assert result.results[-1].is_main_result
    assert result.stderr == "Broken._repr_pretty_() raised ValueError: no; that representation is left out\n"


@both_kinds
def test_ipython_clear_output_writes_nothing(ipython_kernel):
    """`clear_output()` wrote IPython's fallback outside a shell, ANSI line-clearing codes, into
    stdout ("\\x1b[2K\\r" twice a call): a progress loop written for Jupyter filled its output
    with them. Nothing is cleared on the wire, so it does nothing, however it is reached."""
    result = ipython_kernel.run_code(
        "import IPython.display, IPython.core.display_functions\n"
        "from IPython.display import clear_output, display\n"
        "for step in range(3):\n"
        "    clear_output(wait=True)\n"
        "    print(f'step {step}')\n"
        "clear_output()\n"
        "IPython.display.clear_output(True)\n"
        "IPython.core.display_functions.clear_output()\n"
        "display('shown', clear=True)\n"
        "print('after')", timeout=120)
    assert result.status == "ok", result.error and result.error.traceback
    assert (result.stdout, result.stderr) == ("step 0\nstep 1\nstep 2\nafter\n", "")
    assert [r.text for r in result.results] == ["'shown'"]


@both_kinds
def test_ipython_display_handles_pretty_and_update_display(ipython_kernel):
    result = ipython_kernel.run_code(
        "from IPython.display import display, update_display, DisplayHandle, Pretty\n"
        + DISPLAY_HANDLES
        + "p = display(Pretty('one'), display_id=True)\n"
        "p.update(Pretty('two'))\n"
        "update_display(Pretty('three'), display_id=p.display_id)\n"
        "d = DisplayHandle()\nd.display('x')\nd.update('y')\n"
        + PRETTY_CLASSES + "class Long:\n"
        "    def _repr_pretty_(self, p, cycle):\n"
        "        p.pretty(list(range(40)))\n"
        "Long()", timeout=120)
    assert result.status == "ok", result.error and result.error.traceback
    assert result.stdout == "True 32\nmine None\n"
    assert [r.text for r in result.results] == [
        "'first'", "'second'", "'third'", "1", "2", "one", "two", "three", "'x'", "'y'"] + PRETTY_TEXTS + [
        "[0,\n" + "".join(f" {i},\n" for i in range(1, 39)) + " 39]"]


def test_an_interrupt_while_a_representation_is_made_stops_the_run(pykernel_bin):
    """As IPython's formatters let a KeyboardInterrupt through: an interrupt while `display()`
    waits in a `_repr_html_` stops the run there (it was reported as a representation "left out",
    and the code went on to the next representation and past the display)."""
    from pykernel_raw import RawServer

    server = RawServer(pykernel_bin)
    try:
        code = ("import time\n"
                "class Slow:\n"
                "    def _repr_html_(self):\n"
                "        print('making html', flush=True)\n"
                "        time.sleep(30)\n"
                "    def _repr_markdown_(self):\n"
                "        print('making markdown', flush=True)\n"
                "    def __repr__(self): return 'Slow'\n"
                "display(Slow())\n"
                "print('after display')")
        run = server.request("code.run", {"code": code, "timeout": 60})
        server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == run, what="the html's marker")
        assert server.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
        result = server.response(run)["result"]
        assert (result["status"], result["stdout"], result["stderr"]) == ("interrupted", "making html\n", ""), result
        assert result["error"]["name"] == "KeyboardInterrupt"
        assert result["results"] == []
    finally:
        server.kill()


def test_metadata_json_cannot_hold_is_left_out_with_a_line_on_stderr(kernel):
    """A `_repr_*_` returning (value, metadata) whose metadata JSON cannot hold: the result is
    shown without it (the run was an error, its traceback the json module's frames)."""
    result = kernel.run_code("class L:\n    def _repr_latex_(self): return ('$x$', {'k': object()})\n"
                             "    def __repr__(self): return 'L'\nL()")
    assert result.status == "ok", result
    assert [(r.data, r.metadata) for r in result.results] == [({"text/plain": "L", "text/latex": "$x$"}, {})]
    assert result.stderr.startswith("the metadata of a L result is not JSON (TypeError: ") and result.stderr.endswith("it is left out\n")
