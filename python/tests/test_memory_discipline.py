"""Reference ownership checked by CPython's debug allocator (``PYTHONMALLOC=debug``).

With it, a freed object's memory is overwritten at once, so a Python object the engine used
after releasing its last reference (a borrowed view of an owner already destroyed, a reference
released twice, one stolen that was only borrowed) crashes the process at the use instead of
corrupting the allocator's free lists quietly. Seen that way: a key string released before the
dictionary lookup that used it (the server died at start), and the cell compiler's warnings
filter holding a released string, whose reference count increment wrote into a free list (the
fork server then crashed at its first fork, now and then).

One server (its fork server and workers inherit the environment) runs a broad workload in a
namespace context and in a process context: every path of the engine that creates, borrows or
releases Python objects, once started, must run without a crash.
"""

import os
import re

import pytest

from pykernel_raw import RawServer

WORKLOAD = [
    ("x = 41\nprint(x + 1)", {"status": "ok", "stdout": "42\n"}),
    ("x", {"status": "ok"}),
    ("1/0", {"status": "error"}),
    ("prnt(x)", {"status": "error"}),
    ("class A:\n    value = 1\nA().valeu", {"status": "error"}),
    ("import sys\nsys.stderr.write('e' * 70000)\nprint('p', end='')", {"status": "ok", "stdout": "p"}),
    ("print(*range(5), sep=', ', flush=True)", {"status": "ok", "stdout": "0, 1, 2, 3, 4\n"}),
    ("def f(n):\n    return f(n + 1)\nf(0)", {"status": "error"}),
    ("import asyncio\nawait asyncio.sleep(0)\n'awaited'", {"status": "ok"}),
    ("display({'a': [1, 2.5, None]})\nclass H:\n    def _repr_html_(self):\n        return '<b>h</b>'\nH()",
     {"status": "ok"}),
    ("import os\nos.system('echo from a shell')", {"status": "ok", "stdout": "from a shell\n"}),
    ("import warnings\nwarnings.warn('careful')\nexec(compile('1 is 1', '<w>', 'exec'))", {"status": "ok"}),
    ("import threading\nt = threading.Thread(target=print, args=('thread',))\nt.start(); t.join()",
     {"status": "ok", "stdout": "thread\n"}),
    ("raise SystemExit(3)", {}),
    ("import gc\ngc.collect()\ndel x\nx", {"status": "error"}),
]


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_the_engine_runs_under_the_debug_allocator_without_a_use_after_free(pykernel_bin, isolation):
    env = dict(os.environ, PYTHONMALLOC="debug")
    raw = RawServer(pykernel_bin, ["--pool-size", "1"], env=env)
    try:
        for round in range(2):
            context = raw.result("context.create", {"isolation": isolation}, timeout=30)["id"]
            for code, expected in WORKLOAD:
                answer = raw.result("code.run", {"context": context, "code": code}, timeout=30)
                for key, value in expected.items():
                    assert answer[key] == value, (code, answer)
            stopped = raw.result("code.run", {"context": context, "code": "while True: pass", "timeout": 0.2}, timeout=30)
            assert stopped["status"] == "timeout"
            assert raw.result("code.run", {"context": context, "code": "print('after')"})["stdout"] == "after\n"
            if isolation == "process":
                raw.result("context.restart", {"id": context}, timeout=30)
            raw.result("context.delete", {"id": context}, timeout=30)
        raw.close_stdin()
        assert raw.wait_exit() == 0, raw.stderr.decode(errors="replace")
    finally:
        raw.kill()


# A 10 KB cell (a long script's comments) that defines a class, run again and again.
CLASS_CELL = "# " + "x" * 10_000 + "\nclass Point:\n    def norm(self):\n        return 0\n"


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_cells_that_define_classes_are_not_kept_once_their_classes_are_gone(pykernel_bin, isolation):
    """Every run of a cell that defined a class kept its source for the context's life: ~10 KB of
    RSS more per run of a 10 KB cell, without bound. Now it is dropped with its last class (each
    run rebinds ``Point``): 2,000 runs leave Python's allocated blocks and the RSS of the process
    running the context flat."""
    raw = RawServer(pykernel_bin, ["--pool-size", "1"])
    try:
        context = raw.result("context.create", {"isolation": isolation}, timeout=30)["id"]

        def run(code):
            answer = raw.result("code.run", {"context": context, "code": code}, timeout=30)
            assert answer["status"] == "ok", answer
            return answer["stdout"]

        pid = int(run("import os\nprint(os.getpid())"))

        def measure():
            blocks = int(run("import gc, sys\ngc.collect()\nprint(sys.getallocatedblocks())"))
            with open(f"/proc/{pid}/status") as status:
                rss = int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1))
            return blocks, rss

        for _ in range(200):  # warm-up
            run(CLASS_CELL)
        blocks, rss = measure()
        for _ in range(2_000):
            run(CLASS_CELL)
        grown_blocks, grown_rss = (after - before for after, before in zip(measure(), (blocks, rss)))
        assert grown_blocks < 1_000, f"Python holds {grown_blocks} more blocks after 2,000 runs"
        assert grown_rss < 6_000, f"RSS grew by {grown_rss} kB in 2,000 runs of a 10 KB cell"
        raw.close_stdin()
        assert raw.wait_exit() == 0, raw.stderr.decode(errors="replace")
    finally:
        raw.kill()


# A 10 KB cell that fails (its traceback becomes the context's ``sys.last_traceback``).
FAILING_CELL = "# " + "x" * 10_000 + "\nresult = 1 / 0\n"


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_failing_cells_are_not_kept_once_their_traceback_is_replaced(pykernel_bin, isolation):
    """A failed run's cell is kept while its traceback is the context's ``sys.last_traceback``
    (post-mortem code reads its lines) and forgotten when the next failure replaces it: 2,000
    failing runs of a 10 KB cell leave Python's allocated blocks and the RSS flat."""
    raw = RawServer(pykernel_bin, ["--pool-size", "1"])
    try:
        context = raw.result("context.create", {"isolation": isolation}, timeout=30)["id"]

        def run(code):
            return raw.result("code.run", {"context": context, "code": code}, timeout=30)

        pid = int(run("import os\nprint(os.getpid())")["stdout"])

        def measure():
            blocks = int(run("import gc, sys\ngc.collect()\nprint(sys.getallocatedblocks())")["stdout"])
            with open(f"/proc/{pid}/status") as status:
                rss = int(re.search(r"VmRSS:\s+(\d+) kB", status.read()).group(1))
            return blocks, rss

        for _ in range(200):  # warm-up
            assert run(FAILING_CELL)["status"] == "error"
        blocks, rss = measure()
        for _ in range(2_000):
            assert run(FAILING_CELL)["status"] == "error"
        grown_blocks, grown_rss = (after - before for after, before in zip(measure(), (blocks, rss)))
        assert grown_blocks < 1_000, f"Python holds {grown_blocks} more blocks after 2,000 runs"
        assert grown_rss < 6_000, f"RSS grew by {grown_rss} kB in 2,000 runs of a 10 KB cell"
        # The last one is still there for post-mortem code.
        shown = run("import traceback\ntraceback.print_last()")["stderr"]
        assert '    result = 1 / 0\n' in shown, shown
        raw.close_stdin()
        assert raw.wait_exit() == 0, raw.stderr.decode(errors="replace")
    finally:
        raw.kill()


def test_deleted_contexts_leave_no_cell_sources_once_their_code_is_gone(pykernel_bin):
    """A deleted context's kept cells stay while code of them lives (a function it left in
    ``builtins`` shows its own lines), and go with the last of it: contexts created, made to
    leave a function and a class of a 10 KB cell in ``builtins`` (replacing the previous one's),
    and deleted, leave Python's allocated blocks flat."""
    raw = RawServer(pykernel_bin)
    try:
        def run(context, code):
            answer = raw.result("code.run", {"context": context, "code": code}, timeout=30)
            assert answer["status"] == "ok", answer
            return answer["stdout"]

        def cycle():
            context = raw.result("context.create", {}, timeout=30)["id"]
            run(context, CLASS_CELL + "def f():\n    return 1 / 0\nimport builtins\nbuiltins.kept = (f, Point)\n")
            raw.result("context.delete", {"id": context}, timeout=30)

        def blocks():
            return int(run("default", "import gc, sys\ngc.collect()\nprint(sys.getallocatedblocks())"))

        for _ in range(50):  # warm-up
            cycle()
        before = blocks()
        for _ in range(500):
            cycle()
        grown = blocks() - before
        assert grown < 1_000, f"Python holds {grown} more blocks after 500 contexts"
        # The last one's code lives: its lines too.
        failed = raw.result("code.run", {"code": "kept[0]()"}, timeout=30)
        assert '  File "<cell-1>", line 6, in f\n    return 1 / 0\n' in failed["error"]["traceback"], failed
        raw.close_stdin()
        assert raw.wait_exit() == 0, raw.stderr.decode(errors="replace")
    finally:
        raw.kill()


def test_deleted_contexts_with_pending_tasks_leave_no_cell_sources(pykernel_bin):
    """A context deleted with an asyncio task still pending (its cell created it and awaited
    something else) kept its cell's source for good: the task's coroutine lives until a later
    collection, so the same cell in the next context was kept while code equal to its own (code
    compares by value, not by file) was still alive, and the engine held its weak references to
    kept code in a set, where equal ones are one: the next context's was dropped, collected
    without calling back, and its source never forgotten (~100 KB a context for a 100 KB cell).
    Now 300 contexts created, given such a task and deleted leave Python's allocated blocks flat."""
    raw = RawServer(pykernel_bin)
    try:
        cell = ("import asyncio\nasync def background():\n    await asyncio.sleep(100)\n"
                "task = asyncio.create_task(background())\nawait asyncio.sleep(0)\n")

        def cycle():
            context = raw.result("context.create", {}, timeout=30)["id"]
            answer = raw.result("code.run", {"context": context, "code": cell}, timeout=30)
            assert answer["status"] == "ok", answer
            raw.result("context.delete", {"id": context}, timeout=30)

        def blocks():
            answer = raw.result("code.run", {"code": "import gc, sys\ngc.collect()\nprint(sys.getallocatedblocks())"}, timeout=30)
            return int(answer["stdout"])

        for _ in range(30):  # warm-up
            cycle()
        before = blocks()
        for _ in range(300):
            cycle()
        grown = blocks() - before
        assert grown < 500, f"Python holds {grown} more blocks after 300 contexts"
        raw.close_stdin()
        assert raw.wait_exit() == 0, raw.stderr.decode(errors="replace")
    finally:
        raw.kill()
