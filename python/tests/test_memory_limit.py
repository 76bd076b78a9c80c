"""Process contexts filled to their memory limit (``memory_limit_mb``, or an ``RLIMIT_AS`` the code
sets) with small objects: the run ends ``error`` with python3's ``MemoryError`` and the context keeps
working (the engine's address space reserve), where the worker crashed (SIGABRT/SIGSEGV) when
the engine's own code found no memory left to end the run with.
"""

import re
import subprocess
import sys

import pytest

from pykernel_raw import RawServer

FILL = "x = []\nwhile True: x.append([0]*10)"

# Sets the process's RLIMIT_AS (soft) to its size plus 200 MiB, as memory_limit_mb does.
OWN_LIMIT = (
    "import resource\n"
    "with open('/proc/self/status') as status:\n"
    "    size = next(int(line.split()[1]) for line in status if line.startswith('VmSize:')) * 1024\n"
    "resource.setrlimit(resource.RLIMIT_AS, (size + 200 * 1048576, resource.RLIM_INFINITY))\n"
)


@pytest.fixture(scope="module")
def server(pykernel_bin):
    raw = RawServer(pykernel_bin, ["--pool-size", "1"])
    yield raw
    raw.close_stdin()
    assert raw.wait_exit(timeout=60) == 0
    raw.join_output()


def create(server, **params):
    return server.result("context.create", {"isolation": "process", **params})["id"]


def run(server, context, code):
    return server.result("code.run", {"context": context, "code": code}, timeout=120)


def without_carets(traceback):
    """The traceback without its caret lines (they mark the allocation that failed: `[0]*10` or
    the list's growth in `x.append`)."""
    return "".join(line for line in traceback.splitlines(keepends=True) if not re.fullmatch(r"\s*[~^]+\s*", line))


def python3_traceback(directory):
    """python3's traceback for FILL's MemoryError (run as a file, which python3 shows the source
    lines of, as the engine does a cell's), its allocation failing with memory left to print it
    (`_testcapi.set_nomemory`: under `ulimit -v`, python3's own printing often fails for want of
    memory, printing "During handling of the above exception ... MemoryError" instead)."""
    first, second = FILL.split("\n")
    program = directory / "fill.py"
    program.write_text(f"{first}; import _testcapi; _testcapi.set_nomemory(2000, 2001)\n{second}\n")
    completed = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1, completed
    return completed.stderr.replace(f'"{program}"', '"<program>"')


def test_filling_the_limit_raises_memory_error_and_keeps_the_context(server, tmp_path):
    context = create(server, memory_limit_mb=200)
    run(server, context, "kept = 'still here'")
    filled = run(server, context, FILL)
    assert filled["status"] == "error", filled
    assert (filled["error"]["name"], filled["error"]["value"]) == ("MemoryError", "")
    ours = filled["error"]["traceback"].replace(f'"<cell-{filled["execution_count"]}>"', '"<program>"')
    assert without_carets(ours) == without_carets(python3_traceback(tmp_path))
    # The code's data are kept (x holds what fitted), and so is the rest of the namespace.
    kept = run(server, context, "print(kept, len(x) > 100000)")
    assert kept["stdout"] == "still here True\n", kept
    # Filling again without freeing: MemoryError again, not a crash.
    again = run(server, context, "y = []\nwhile True: y.append([0]*10)")
    assert again["status"] == "error" and again["error"]["name"] == "MemoryError", again
    freed = run(server, context, "del x, y\nprint(1)")
    assert (freed["status"], freed["stdout"]) == ("ok", "1\n"), freed
    server.result("context.delete", {"id": context})


def test_a_caught_memory_error_with_the_data_kept(server):
    context = create(server, memory_limit_mb=200)
    caught = run(server, context, "x = []\ntry:\n    while True:\n        x.append([0]*10)\n"
                                  "        if len(x) % 1000 == 0: print(len(x))\n"
                                  "except MemoryError:\n    print('caught')\n")
    assert caught["status"] == "ok" and caught["stdout"].endswith("caught\n"), caught
    following = run(server, context, "print('next run', len(x) > 100000)")
    assert (following["status"], following["stdout"]) == ("ok", "next run True\n"), following
    server.result("context.delete", {"id": context})


@pytest.mark.parametrize("same_run", [False, True], ids=["then-fills", "fills-in-the-same-run"])
def test_a_limit_the_code_sets_itself(server, same_run):
    context = create(server)
    if same_run:
        filled = run(server, context, OWN_LIMIT + FILL)
    else:
        assert run(server, context, OWN_LIMIT)["status"] == "ok"
        filled = run(server, context, FILL)
    assert filled["status"] == "error" and filled["error"]["name"] == "MemoryError", filled
    freed = run(server, context, "del x\nprint(1)")
    assert (freed["status"], freed["stdout"]) == ("ok", "1\n"), freed
    server.result("context.delete", {"id": context})


def test_twenty_fills_in_a_row(server):
    context = create(server, memory_limit_mb=40)
    for attempt in range(20):
        filled = run(server, context, FILL)
        assert filled["status"] == "error" and filled["error"]["name"] == "MemoryError", (attempt, filled)
        freed = run(server, context, "del x\nprint(1)")
        assert freed["stdout"] == "1\n", (attempt, freed)
    server.result("context.delete", {"id": context})
