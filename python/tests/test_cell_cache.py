"""A cell run again is not compiled again: its code is copied under the new cell's name.

Everything a run shows must be what a fresh compilation gives: the cell's own filename in
tracebacks and in the code of what it defines, the last expression's value, and the compiler's
warnings at every run, under the filters the code set at that time.
"""

import pytest

from pykernel_raw import RawServer


@pytest.fixture(scope="module")
def server(pykernel_bin):
    raw = RawServer(pykernel_bin)
    yield raw
    raw.kill()


@pytest.fixture(params=["namespace", "process"])
def context(request, server):
    created = server.result("context.create", {"isolation": request.param})
    yield created["id"]
    server.call("context.delete", {"context": created["id"]})


def run(server, context, code):
    return server.result("code.run", {"code": code, "context": context}, timeout=60)


def shown(result):
    return [r["data"]["text/plain"] for r in result.get("results", []) if r["is_main_result"]]


DEFINES = "def f(n):\n    return [1 / k for k in range(n, -1, -1)]\ng = lambda: f(2)\nf.__code__.co_filename"


def test_a_cell_run_again_names_its_own_cell_everywhere(server, context):
    for _ in range(4):
        defined = run(server, context, DEFINES)
        count = defined["execution_count"]
        assert shown(defined) == [f"'<cell-{count}>'"]
        failed = run(server, context, "g()")
        assert failed["status"] == "error"
        traceback = failed["error"]["traceback"]
        assert f'File "<cell-{count + 1}>", line 1, in <module>' in traceback
        assert f'File "<cell-{count}>", line 3, in <lambda>' in traceback
        assert f'File "<cell-{count}>", line 2, in f' in traceback
        assert f'File "<cell-{count}>", line 2, in <listcomp>' in traceback
        assert "    return [1 / k for k in range(n, -1, -1)]\n" in traceback
        assert traceback.endswith("ZeroDivisionError: division by zero\n")


def test_functions_of_two_runs_of_a_cell_have_their_own_code(server, context):
    run(server, context, "kept = []")
    for _ in range(3):
        run(server, context, "def h():\n    return 1\nkept.append(h)")
    names = run(server, context, "print([k.__code__.co_filename for k in kept], len({id(k.__code__) for k in kept}))")
    first = int(names["stdout"].split("<cell-")[1].split(">")[0])
    assert names["stdout"] == f"{[f'<cell-{first + i}>' for i in range(3)]} 3\n"


@pytest.mark.parametrize("code, value", [
    ("x = 6 * 7\nx", "42"),
    ("x = 6 * 7; x", "42"),
    ("x = 6 * 7; x;", None),
    ("'constant'", "'constant'"),
    ("[i for i in range(3)]", "[0, 1, 2]"),
    ("import asyncio\nawait asyncio.sleep(0)\n'awaited'", "'awaited'"),
])
def test_the_last_value_of_a_cell_run_again(server, context, code, value):
    for _ in range(4):
        result = run(server, context, code)
        assert result["status"] == "ok", result
        assert shown(result) == ([value] if value else [])


WARNS = "y = 1 is 1"
WARNING = '<cell-{}>:1: SyntaxWarning: "is" with a literal. Did you mean "=="?\n  y = 1 is 1\n'


def test_a_cell_that_warns_warns_at_every_run_under_the_filters_of_the_time(server, context):
    try:
        for _ in range(3):
            result = run(server, context, WARNS)
            assert result["stderr"] == WARNING.format(result["execution_count"])
        run(server, context, "import warnings\nwarnings.simplefilter('ignore')")
        for _ in range(3):
            assert run(server, context, WARNS)["stderr"] == ""
        run(server, context, "warnings.simplefilter('error')")
        for _ in range(3):
            result = run(server, context, WARNS)
            assert result["status"] == "error"
            assert result["error"]["name"] == "SyntaxError"
        run(server, context, "warnings.simplefilter('always')")
        for _ in range(3):
            result = run(server, context, WARNS)
            assert result["stderr"] == WARNING.format(result["execution_count"])
    finally:
        run(server, context, "import warnings\nwarnings.resetwarnings()\nwarnings.simplefilter('default')")


def test_a_cell_first_run_under_ignore_warns_once_the_filters_show_it(server, context):
    """Seen twice while its warning is ignored, then shown: a cache of the code compiled under
    "ignore" would lose the warning."""
    code = "z = 2 is 2"
    try:
        run(server, context, "import warnings\nwarnings.simplefilter('ignore')")
        for _ in range(3):
            assert run(server, context, code)["stderr"] == ""
        run(server, context, "warnings.simplefilter('always')")
        result = run(server, context, code)
        assert 'SyntaxWarning: "is" with a literal' in result["stderr"]
    finally:
        run(server, context, "import warnings\nwarnings.resetwarnings()\nwarnings.simplefilter('default')")


def test_the_code_s_warnings_registry_is_not_reset_by_a_compilation(server, context):
    """A warning shown once per location stays shown once: compiling a new cell (strictly, to
    cache it) must not make the registries forget what they showed."""
    run(server, context, "import warnings\ndef w():\n    warnings.warn('once here', UserWarning)")
    counts = []
    for index in range(4):
        # A new source each time, run twice (the second run compiles it for the cache).
        run(server, context, f"v{index} = {index}")
        run(server, context, f"v{index} = {index}")
        counts.append(run(server, context, "w()")["stderr"].count("UserWarning: once here"))
    assert counts == [1, 0, 0, 0]


def test_each_cell_line_that_warns_warns_once_as_each_line_of_a_file(server, context):
    """The cells read as one file by python3: a warning at a line of a later cell is shown though
    an earlier cell warned the same at the same line number (warnings' registry has no file in its
    keys, and cells share their context's globals: it was hidden); within a cell, once per line;
    a function's line (defined in an earlier cell) once for all the cells that call it."""
    same = "import warnings\nwarnings.warn('same text')"
    for _ in range(2):
        result = run(server, context, same)
        assert result["stderr"] == f"<cell-{result['execution_count']}>:2: UserWarning: same text\n  warnings.warn('same text')\n"
    result = run(server, context, "for _ in range(3):\n    warnings.warn('in a loop')")
    assert result["stderr"].count("UserWarning: in a loop") == 1
    run(server, context, "def deprecated():\n    warnings.warn('deprecated() is', DeprecationWarning, stacklevel=2)\n"
                         "def own_line():\n    warnings.warn('own line')")
    for _ in range(3):
        result = run(server, context, "deprecated()")
        assert result["stderr"] == f"<cell-{result['execution_count']}>:1: DeprecationWarning: deprecated() is\n  deprecated()\n"
    assert [run(server, context, "own_line()")["stderr"].count("UserWarning: own line") for _ in range(3)] == [1, 0, 0]
    # The registry still pickles and copies with the namespace (as a session saver does).
    copied = run(server, context, "import copy, pickle\nlen(pickle.loads(pickle.dumps(__warningregistry__))) == len(copy.deepcopy(__warningregistry__))")
    assert (copied["status"], copied["results"][0]["data"]["text/plain"]) == ("ok", "True")


def test_a_comprehension_or_a_function_s_line_does_not_hide_the_same_line_number_of_another_cell(server, context):
    """A comprehension at a cell's top level is that top level's line (shown again at the same
    line of a later cell), and a function's line is its own cell's (it hid a later cell's top-level
    line of the same number and text, and was hidden by one, where python3 shows each file's line)."""
    def shown(code):
        result = run(server, context, code)
        return result["stderr"].replace(f"<cell-{result['execution_count']}>", "<cell>")

    comprehension = "import warnings\n[warnings.warn('lc') for _ in range(2)]"
    assert [shown(comprehension) for _ in range(2)] == ["<cell>:2: UserWarning: lc\n  [warnings.warn('lc') for _ in range(2)]\n"] * 2
    run(server, context, "import warnings\ndef f(): warnings.warn('dup')")
    assert [shown("f()").count("UserWarning: dup") for _ in range(2)] == [1, 0]
    assert shown("import warnings\nwarnings.warn('dup')") == "<cell>:2: UserWarning: dup\n  warnings.warn('dup')\n"
    # The other way round: a top-level line first, then a function's line of the same number.
    assert shown("import warnings\nwarnings.warn('top')").count("UserWarning: top") == 1
    run(server, context, "import warnings\ndef g(): warnings.warn('top')")
    assert [shown("g()").count("UserWarning: top") for _ in range(2)] == [1, 0]


def test_a_syntax_error_run_again_is_reported_each_time(server, context):
    for _ in range(3):
        result = run(server, context, "x = (\n")
        assert result["status"] == "error"
        assert result["error"]["name"] == "SyntaxError"
        assert f'File "<cell-{result["execution_count"]}>", line 1' in result["error"]["traceback"]


HOSTILE = {
    "warnings removed from sys.modules": "import sys\nsaved_warnings = sys.modules.pop('warnings')",
    "warnings.filters a tuple": "import warnings\nsaved_filters = warnings.filters\nwarnings.filters = ()",
    "warnings.filters deleted": "import warnings\nsaved_filters = warnings.filters\ndel warnings.filters",
    "sys.modules['warnings'] is None": "import sys\nsaved_warnings = sys.modules['warnings']\nsys.modules['warnings'] = None",
}
RESTORE = ("import sys\nif 'saved_warnings' in globals(): sys.modules['warnings'] = saved_warnings\n"
           "if 'saved_filters' in globals():\n    import warnings\n    warnings.filters = saved_filters\n"
           "    warnings._filters_mutated()")


@pytest.mark.parametrize("name", HOSTILE)
def test_cells_run_again_after_the_warnings_machinery_was_tampered_with(server, context, name):
    try:
        assert run(server, context, HOSTILE[name])["status"] == "ok"
        for index in range(3):
            result = run(server, context, "n = 20 + 22\nn")
            assert result["status"] == "ok", result
            assert shown(result) == ["42"]
            failed = run(server, context, "def k():\n    return 1 / 0\nk()")
            assert failed["error"]["name"] == "ZeroDivisionError"
            assert f'File "<cell-{failed["execution_count"]}>", line 2, in k' in failed["error"]["traceback"]
    finally:
        run(server, context, RESTORE)


def test_a_compilation_for_the_cache_leaves_the_collector_as_the_code_set_it(server, context):
    try:
        for enabled in ("gc.disable()", "gc.enable()"):
            run(server, context, f"import gc\n{enabled}")
            fresh = f"fresh_{enabled[3:-2]} = 1"
            for _ in range(3):
                run(server, context, fresh)
            assert run(server, context, "print(gc.isenabled())")["stdout"] == f"{enabled == 'gc.enable()'}\n"
    finally:
        run(server, context, "import gc\ngc.enable()")


def test_a_cell_run_again_under_an_audit_hook_refusing_new_code_objects(server):
    """Copies are made with `code.replace`, which raises `code.__new__`: refused, the cell is
    compiled as before. (An audit hook stays for the process's life: its own server.)"""
    created = server.result("context.create", {"isolation": "process"})["id"]
    try:
        hook = ("import sys\ndef refuse(event, args):\n    if event == 'code.__new__':\n"
                "        raise RuntimeError('no new code objects')\nsys.addaudithook(refuse)")
        assert run(server, created, hook)["status"] == "ok"
        for _ in range(3):
            result = run(server, created, "m = 6 * 7\nm")
            assert result["status"] == "ok", result
            assert shown(result) == ["42"]
    finally:
        server.call("context.delete", {"context": created})


def test_a_class_from_an_old_cell_keeps_its_source_while_it_lives(server, context):
    """A cell that defines a class is kept while the class lives (not for the context's life):
    ``inspect.getsource`` of the class and of its methods, and tracebacks through its methods,
    show the old cell's lines many runs later; once the class is gone, the cell is too."""
    defined = run(server, context, "class Point:\n    x = 1\n    def norm(self):\n        return 1 / 0\n"
                                   "class Bare:\n    pass\nbare = Bare()\ndel Bare\nprint('defined')")
    cell = f"<cell-{defined['execution_count']}>"
    for n in range(50):  # later cells that define classes of their own, dropped as theirs go
        run(server, context, f"class Other:\n    n = {n}")
    shown = run(server, context, "import inspect\nprint(inspect.getsource(Point), end='')\n"
                                 "print(inspect.getsource(Point.norm), end='')\nprint(inspect.getsource(type(bare)), end='')")
    assert shown["stdout"] == ("class Point:\n    x = 1\n    def norm(self):\n        return 1 / 0\n"
                               "    def norm(self):\n        return 1 / 0\nclass Bare:\n    pass\n"), shown
    failed = run(server, context, "Point().norm()")
    assert f'File "{cell}", line 4, in norm\n    return 1 / 0\n' in failed["error"]["traceback"], failed
    # The failed run's traceback (sys.last_traceback, as python3's REPL keeps it) holds norm's frame.
    assert run(server, context, "del Point, bare\nimport gc, sys\nsys.last_type = sys.last_value = sys.last_traceback = None\n"
                                "gc.collect()")["status"] == "ok"
    kept = run(server, context, f"import linecache\nprint(linecache.getlines({cell!r}))")
    assert kept["stdout"] == "[]\n", kept


ANNOTATED = "def g(x: int): pass\ng.__annotations__"


def test_a_future_import_holds_for_the_later_cells_of_its_context_only(server, context):
    # As in python3's REPL (codeop) and IPython: cells compiled after `from __future__ import ...`
    # keep the feature, also when the same source was compiled (and cached) without it elsewhere.
    elsewhere = server.result("context.create", {})["id"]
    try:
        for _ in range(3):
            assert shown(run(server, elsewhere, ANNOTATED)) == ["{'x': <class 'int'>}"]
        assert run(server, context, "from __future__ import annotations")["status"] == "ok"
        for _ in range(3):
            assert shown(run(server, context, ANNOTATED)) == ["{'x': 'int'}"]
        # Features add up, and change what parses.
        run(server, context, "from __future__ import barry_as_FLUFL")
        for _ in range(2):
            flufl = run(server, context, "print(1 <> 2)\n1 <> 1")
            assert (flufl["status"], flufl["stdout"], shown(flufl)) == ("ok", "True\n", ["False"])
        assert shown(run(server, context, ANNOTATED)) == ["{'x': 'int'}"]
        # Another context compiles without them.
        assert shown(run(server, elsewhere, ANNOTATED)) == ["{'x': <class 'int'>}"]
        assert run(server, elsewhere, "1 <> 2")["error"]["name"] == "SyntaxError"
    finally:
        server.call("context.delete", {"context": elsewhere})


def test_a_deleted_contexts_function_shows_its_own_lines_not_those_of_anothers_cell(server):
    """A function a context left in ``builtins`` keeps its cell's source after the context's
    deletion while it lives: its frame showed the calling context's ``<cell-1>`` line 3 (the store
    of the running context was searched by name once the deleted context's was forgotten), and
    ``inspect.getsource`` raised ``OSError``."""
    a, b = (server.result("context.create", {})["id"] for _ in range(2))
    run(server, a, "import builtins\ndef boom():\n    return 1 / 0\nclass Kept:\n    def norm(self):\n"
                   "        return boom()\nbuiltins.boom, builtins.Kept = boom, Kept\n")
    server.result("context.delete", {"id": a})
    try:
        failed = run(server, b, "first = 1\nsecond = 2\nKept().norm()\n")
        assert failed["error"]["traceback"] == (
            'Traceback (most recent call last):\n  File "<cell-1>", line 3, in <module>\n    Kept().norm()\n'
            '  File "<cell-1>", line 6, in norm\n    return boom()\n           ^^^^^^\n'
            '  File "<cell-1>", line 3, in boom\n    return 1 / 0\n           ~~^~~\nZeroDivisionError: division by zero\n'), failed
        shown = run(server, b, "import inspect, traceback\nprint(inspect.getsource(boom), end='')\n"
                               "try:\n    boom()\nexcept ZeroDivisionError:\n    traceback.print_exc()")
        assert shown["stdout"] == "def boom():\n    return 1 / 0\n", shown
        assert '  File "<cell-1>", line 3, in boom\n    return 1 / 0\n' in shown["stderr"], shown
    finally:
        run(server, b, "import builtins\ndel builtins.boom, builtins.Kept")
        server.result("context.delete", {"id": b})


def test_what_a_deleted_contexts_finalizers_write_reaches_no_other_context(server, tmp_path):
    """Deleting a context runs its objects' ``__del__``: what they printed and the ``Exception
    ignored in`` report of their failure came in the next run of the context that ran before
    (output between runs goes to the context that ran last)."""
    a, b = (server.result("context.create", {})["id"] for _ in range(2))
    ran = tmp_path / "finalized"
    assert run(server, b, "print('b first')")["stdout"] == "b first\n"
    run(server, a, "class D:\n    def __del__(self):\n        print('A del prints')\n"
                   f"        open({str(ran)!r}, 'w').close()\n"
                   "        raise ValueError('A del fails')\nd = D()\n")
    server.result("context.delete", {"id": a})
    after = run(server, b, "print('b second')")
    assert ran.exists()  # the finalizer ran, before this run
    assert (after["stdout"], after["stderr"]) == ("b second\n", ""), after
    server.result("context.delete", {"id": b})


def test_a_failed_cells_lines_show_wherever_its_saved_traceback_or_frame_is_read(server):
    """The cell of a context's last failed run stays while its traceback (``sys.last_traceback``)
    may be read: another context printing it (a module or ``builtins`` shares it) shows the failed
    cell's own lines, never that context's cell of the same name; and once the next failure lets
    it go, a frame of it the code saved keeps showing them, also after the context's deletion."""
    a, b = (server.result("context.create", {})["id"] for _ in range(2))
    try:
        failed = run(server, a, "import builtins, sys\nbuiltins.saved_frame = sys._getframe()\nfirst = 1 / 0\n")
        assert failed["status"] == "error"
        run(server, a, "import builtins, sys\nbuiltins.saved_tb = sys.last_traceback")
        printed = "import traceback\ntraceback.print_tb(saved_tb)\ntraceback.print_stack(saved_frame)"
        expected = '  File "<cell-1>", line 3, in <module>\n    first = 1 / 0\n'
        assert run(server, b, printed)["stderr"] == expected + "            ~~^~~\n" + expected
        # The next failures let the first one's traceback go; the saved frame still holds its code.
        run(server, a, "import builtins\ndel builtins.saved_tb")
        for _ in range(2):
            assert run(server, a, "second = 2 / 0")["status"] == "error"
        assert run(server, b, "import traceback\ntraceback.print_stack(saved_frame)")["stderr"] == expected
        server.result("context.delete", {"id": a})
        a = None
        assert run(server, b, "import traceback\ntraceback.print_stack(saved_frame)")["stderr"] == expected
    finally:
        run(server, b, "import builtins\nbuiltins.__dict__.pop('saved_frame', None)\nbuiltins.__dict__.pop('saved_tb', None)")
        for context in (a, b):
            if context is not None:
                server.result("context.delete", {"id": context})
