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
