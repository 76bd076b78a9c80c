"""Process contexts (``isolation: "process"``, issue 11) against the real ``pykernel serve``.

One server per module (``server``) for the cases that leave it healthy; cases about shutdown
start their own.
"""

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from pykernel_raw import RawServer, is_response

# Code that does not stop: native code blocks the stop signal (libc's pthread_sigmask through
# ctypes; Python's own keeps it deliverable), then a sleep, which only that signal interrupts. (A
# Python loop catching every stop around its sleeps is not: a stop can land at the loop's jump,
# outside the try, as a second Ctrl-C can in python3.)
STUBBORN = (
    "import ctypes, signal, time\n"
    "stop = int(signal.SIGRTMIN) + 3\n"
    "mask = (ctypes.c_ulong * 16)()\n"
    "mask[(stop - 1) // 64] |= 1 << ((stop - 1) % 64)\n"
    "ctypes.CDLL(None).pthread_sigmask(0, ctypes.byref(mask), None)  # SIG_BLOCK\n"
    "time.sleep(60)\n"
)


@pytest.fixture(scope="module")
def server(pykernel_bin):
    raw = RawServer(pykernel_bin, ["--pool-size", "2"])
    yield raw
    raw.close_stdin()
    assert raw.wait_exit() == 0
    raw.join_output()


def create(server, **params):
    return server.result("context.create", {"isolation": "process", **params})


def run(server, context, code, **params):
    return server.result("code.run", {"context": context, "code": code, **params}, timeout=30)


def descendants(pid):
    """Every process whose parent chain leads to pid (read from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                parents[int(entry)] = int(fields[1])
            except OSError:
                continue
    found, frontier = set(), {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("isolation", ["process", "namespace"])
def test_print_last_in_the_next_run_shows_the_failed_runs_traceback(server, isolation):
    """`sys.last_type`, `last_value` and `last_traceback` are set after a run that raised, as
    python3's interactive mode and IPython set them: `traceback.print_last()` in the next run
    prints the error record's traceback (it raised AttributeError: sys had no last_type)."""
    context = server.result("context.create", {"isolation": isolation})["id"]
    try:
        failed = run(server, context, "def f():\n    return 1/0\nf()")
        assert failed["status"] == "error"
        shown = run(server, context, "import sys, traceback\ntraceback.print_last()")
        assert shown["status"] == "ok", shown["error"]
        assert shown["stderr"] == failed["error"]["traceback"]
    finally:
        server.result("context.delete", {"id": context})


def test_state_output_and_errors(server):
    context = create(server)
    # Alive when a ready worker was bound at once, else starting (the pool is still warming up).
    assert context["isolation"] == "process" and context["state"] in ("alive", "starting")
    pid = run(server, context["id"], "import os\npid = os.getpid()\nprint(pid)")
    assert int(pid["stdout"]) != server.process.pid
    assert pid["execution_count"] == 1
    again = run(server, context["id"], "print(pid * 2)")
    assert int(again["stdout"]) == 2 * int(pid["stdout"])
    request = server.request("code.run", {"context": context["id"],
                                          "code": "import os, sys\nos.write(1, b'fd\\n')\nos.system('echo shell')\nprint('err', file=sys.stderr)"})
    result = server.response(request, timeout=30)["result"]
    assert result["status"] == "ok"
    assert "fd\n" in result["stdout"] and "shell\n" in result["stdout"] and result["stderr"] == "err\n"
    streamed = "".join(n["params"]["text"] for n in server.notifications(request) if n["params"]["stream"] == "stdout")
    assert "fd\n" in streamed and "shell\n" in streamed
    error = run(server, context["id"], "def f():\n    return 1/0\nf()")
    assert error["status"] == "error" and error["error"]["name"] == "ZeroDivisionError"
    assert "<cell-4>" in error["error"]["traceback"] or "line 2" in error["error"]["traceback"]
    env = run(server, context["id"], "import os\nprint(os.environ['ISO_VAR'])", env={"ISO_VAR": "v1"})
    assert env["stdout"] == "v1\n"
    server.result("context.delete", {"id": context["id"]})


def test_sys_modules_not_shared(server):
    first, second = create(server)["id"], create(server)["id"]
    run(server, first, "import json\njson.dumps = lambda *a, **k: 'patched'")
    assert run(server, first, "import json\nprint(json.dumps(1))")["stdout"] == "patched\n"
    assert run(server, second, "import json\nprint(json.dumps(1))")["stdout"] == "1\n"
    for context in (first, second):
        server.result("context.delete", {"id": context})


def test_runs_answered_out_of_order_leave_the_queue_and_later_runs_watched(server):
    """A run that displays a result is answered by the worker's relaying task, so the run written
    after it can be answered first (the protocol does not order answers). The server took only the
    first of a context's runs off its queue: every run after such a pair stayed queued for good
    (memory: ~2 KB a run plus its results) and no later run had its deadline watched, so a run
    that ignored its stops was never ended. Pipelined displays, then a run that ignores its
    interrupt: it is still ended after the grace period, the context dead."""
    context = create(server)["id"]
    run(server, context, "class H:\n    def _repr_html_(self):\n        return '<b>h</b>'")
    for _ in range(100):
        ids = [server.request("code.run", {"context": context, "code": "display(H())"}) for _ in range(4)]
        for id in ids:
            assert server.response(id, timeout=30)["result"]["status"] == "ok"
    # The start is announced in one native call with the sleep (as test_interrupt_escalates_to_kill
    # does): an interrupt that landed between a `print` and the sleep stopped the run through the
    # eval breaker, whatever signals it blocks (its context then stayed alive, rightly).
    announced = STUBBORN.replace("time.sleep(60)\n", "import functools, itertools\n"
                                 "list(itertools.chain(map(functools.partial(print, flush=True), ['started']), map(time.sleep, [60])))\n")
    stubborn = server.request("code.run", {"context": context, "code": announced})
    server.wait_for(lambda m: m.get("method") == "code.output" and m["params"].get("request_id") == stubborn,
                    what="the stubborn run's start")
    assert server.result("code.interrupt", {"context": context}) == {"interrupted": True}
    assert server.response(stubborn, timeout=30)["result"]["status"] == "interrupted"
    wait_until(lambda: {c["id"]: c for c in server.result("context.list")["contexts"]}[context]["state"] == "dead",
               timeout=15, what="the stubborn run's worker to be ended")
    server.result("context.delete", {"id": context})


def test_cwd_and_list(server, tmp_path):
    context = create(server, cwd=str(tmp_path))
    assert context["cwd"] == str(tmp_path)
    assert run(server, context["id"], "import os\nprint(os.getcwd())")["stdout"] == f"{tmp_path}\n"
    listed = {c["id"]: c for c in server.result("context.list")["contexts"]}
    assert listed[context["id"]]["isolation"] == "process"
    assert listed["default"]["isolation"] == "namespace"
    server.result("context.delete", {"id": context["id"]})


def test_stubborn_loop_killed_after_grace_while_others_answer(server):
    stubborn, other = create(server)["id"], create(server)["id"]
    run(server, stubborn, "kept = 1")
    run(server, other, "kept = 2")
    started = time.monotonic()
    request = server.request("code.run", {"context": stubborn, "code": STUBBORN, "timeout": 0.5})
    # While the stubborn run goes on, the other process context answers at once.
    time.sleep(0.3)
    assert run(server, other, "print(kept)")["stdout"] == "2\n"
    result = server.response(request, timeout=30)["result"]
    elapsed = time.monotonic() - started
    assert result["status"] == "timeout"
    assert "state is lost" in result["error"]["value"]
    assert 2.3 <= elapsed < 10
    dead = server.call("code.run", {"context": stubborn, "code": "print(kept)"})
    assert dead["error"]["code"] == -32006 and dead["error"]["data"]["reason"] == "context_dead"
    listed = {c["id"]: c for c in server.result("context.list")["contexts"]}
    assert listed[stubborn]["state"] == "dead"
    assert run(server, other, "print(kept)")["stdout"] == "2\n"
    restarted = server.result("context.restart", {"id": stubborn})
    assert restarted["id"] == stubborn and restarted["state"] == "alive"
    fresh = run(server, stubborn, "print('kept' in globals())")
    assert fresh["stdout"] == "False\n" and fresh["execution_count"] == 1
    for context in (stubborn, other):
        server.result("context.delete", {"id": context})


def test_interrupt_escalates_to_kill(server):
    context = create(server)["id"]
    # The marker comes once the stop signal is blocked, in one native call with the sleep (the
    # eval breaker, which still reaches bytecode, cannot act between them).
    code = STUBBORN.replace("time.sleep(60)\n", "import functools, itertools\n"
                            "list(itertools.chain(map(functools.partial(print, flush=True), ['started']), map(time.sleep, [60])))\n")
    request = server.request("code.run", {"context": context, "code": code})
    server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == request)
    assert server.result("code.interrupt", {"context": context}) == {"interrupted": True}
    result = server.response(request, timeout=30)["result"]
    assert result["status"] == "interrupted" and result["error"]["value"] == "" and "state is lost" in result["error"]["traceback"]
    assert result["stdout"] == "started\n"
    assert server.call("code.run", {"context": context, "code": "1"})["error"]["code"] == -32006
    server.result("context.delete", {"id": context})


def test_an_interrupt_of_a_stopped_worker_ends_its_run_after_the_grace_period(server):
    """A worker stopped by SIGSTOP never answers the interrupt: it was never answered, and the run
    never ended (only context.delete got out of it). After the grace period the run ends with the
    worker, as one that did not stop, and the interrupt is answered true."""
    context = create(server)["id"]
    pid = run(server, context, "import os\nprint(os.getpid())")["stdout"]
    request = server.request("code.run", {"context": context, "code": "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)",
                                          "timeout": 0})
    wait_until(lambda: open(f"/proc/{int(pid)}/stat").read().rsplit(")", 1)[1].split()[0] == "T", what="the worker stopped")
    assert server.result("code.interrupt", {"context": context}, timeout=15) == {"interrupted": True}
    result = server.response(request, timeout=15)["result"]
    assert result["status"] == "interrupted" and "state is lost" in result["error"]["traceback"]
    assert "id" in server.result("context.restart", {"id": context})
    assert run(server, context, "print('again')")["stdout"] == "again\n"
    server.result("context.delete", {"id": context})


def stop_worker(server, context):
    """SIGSTOPs the context's worker once it is stopped; returns its pid."""
    pid = int(run(server, context, "import os\nprint(os.getpid())")["stdout"])
    os.kill(pid, signal.SIGSTOP)
    wait_until(lambda: process_state(pid) == "T", what="the worker stopped")
    return pid


# A cell larger than a pipe's buffer (64 KiB).
PADDING = "\n#" + "c" * 200_000


def test_a_stopped_worker_sent_more_than_its_pipe_holds_stalls_nothing_else(server):
    """A cell larger than a pipe's buffer for a context whose worker is stopped (SIGSTOP) blocked
    the server's request reader in its write to that worker: no other context's run, no
    kernel.info, no shutdown was answered any more. What the pipe has no room for now waits for
    that worker alone, and reaches it in order once it reads again."""
    stopped, other = create(server)["id"], create(server)["id"]
    pid = stop_worker(server, stopped)
    try:
        big = server.request("code.run", {"context": stopped, "code": "x = 1" + PADDING})
        after = server.request("code.run", {"context": stopped, "code": "print(x + 1)"})
        assert run(server, other, "print('other context')")["stdout"] == "other context\n"
        assert server.result("kernel.info")["name"] == "pykernel"
    finally:
        os.kill(pid, signal.SIGCONT)
    assert server.response(big, timeout=15)["result"]["status"] == "ok"
    assert server.response(after, timeout=15)["result"]["stdout"] == "2\n"
    # Deleting a context whose worker has requests waiting to be written works too.
    pid = stop_worker(server, stopped)
    waiting = server.request("code.run", {"context": stopped, "code": "x = 2" + PADDING})
    server.result("context.delete", {"id": stopped})
    assert server.response(waiting, timeout=15)["result"]["status"] == "interrupted"
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), what="the stopped worker gone")
    server.result("context.delete", {"id": other})


def test_an_interrupt_follows_a_cell_that_waits_for_a_stopped_worker(server):
    """The interrupt of a run still waiting to be written to its (stopped) worker is written after
    it: the worker, resumed within the grace period, reads the run, then the interrupt, which
    stops it (read together, the run is interrupted where it begins) and the context keeps its
    state. An interrupt written first would have found nothing running (`false`)."""
    context = create(server)["id"]
    run(server, context, "x = 41")
    pid = stop_worker(server, context)
    try:
        sleeper = server.request("code.run", {"context": context, "code": "import time\ntime.sleep(60)" + PADDING})
        interrupt = server.request("code.interrupt", {"context": context})
    finally:
        os.kill(pid, signal.SIGCONT)
    assert server.response(interrupt, timeout=15)["result"] == {"interrupted": True}
    result = server.response(sleeper, timeout=15)["result"]
    assert result["status"] == "interrupted" and result["error"]["name"] == "KeyboardInterrupt"
    assert "state is lost" not in result["error"]["traceback"]
    assert run(server, context, "print(x + 1)")["stdout"] == "42\n"
    server.result("context.delete", {"id": context})


def test_interrupt_that_is_obeyed_keeps_state(server):
    context = create(server)["id"]
    run(server, context, "x = 5")
    request = server.request("code.run", {"context": context, "code": "import time\nprint('go', flush=True)\ntime.sleep(60)"})
    server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == request)
    server.result("code.interrupt", {"context": context})
    result = server.response(request, timeout=30)["result"]
    assert result["status"] == "interrupted" and result["error"]["name"] == "KeyboardInterrupt"
    assert run(server, context, "print(x)")["stdout"] == "5\n"
    server.result("context.delete", {"id": context})


@pytest.mark.parametrize("code, signal_name", [
    ("import ctypes\nctypes.string_at(0)", "SIGSEGV"),
    ("import os\nos.kill(os.getpid(), 9)", "SIGKILL"),
])
def test_crash_is_answered_and_others_survive(server, code, signal_name):
    victim, bystander = create(server)["id"], create(server)["id"]
    run(server, bystander, "survivor = 'yes'")
    server.result("code.run", {"code": "namespace_state = 7"})
    # Output reaches the server within the 20 ms coalescing window; what is newer dies with the worker.
    result = run(server, victim, "import time\nprint('before', flush=True)\ntime.sleep(0.2)\n" + code)
    assert result["status"] == "crashed"
    assert result["error"]["name"] == "WorkerCrashed" and signal_name in result["error"]["value"]
    assert result["stdout"] == "before\n"
    assert server.call("code.run", {"context": victim, "code": "1"})["error"]["data"]["reason"] == "context_dead"
    assert run(server, bystander, "print(survivor)")["stdout"] == "yes\n"
    assert server.result("code.run", {"code": "print(namespace_state)"})["stdout"] == "7\n"
    server.result("context.delete", {"id": victim})  # deleting a dead context works
    server.result("context.delete", {"id": bystander})


@pytest.mark.parametrize("crash, signal_name", [
    ("ctypes.string_at(0)", "SIGSEGV"),
    ("ctypes.CDLL(None).abort()", "SIGABRT"),
    # To the calling thread: a process-directed signal may be taken by another thread of the
    # worker after the run has already been answered `ok` (the kernel prefers the main thread).
    ("signal.pthread_kill(threading.get_ident(), signal.SIGBUS)", "SIGBUS"),
])
def test_output_written_just_before_a_crash_arrives_first(server, crash, signal_name):
    """What the run printed and displayed right before a crash by signal (still in the worker's
    coalescing window) arrives before the `crashed` answer, which names the signal the worker
    died of, and is in that answer (its `results` were missing)."""
    context = create(server)["id"]
    request = server.request("code.run", {"context": context, "code": (
        f"import ctypes, os, signal, threading\nprint('last words')\ndisplay({{'shown': 1}})\n{crash}")})
    reply = server.response(request, timeout=30)
    result = reply["result"]
    assert result["status"] == "crashed" and signal_name in result["error"]["value"]
    assert result["stdout"] == "last words\n"
    assert [shown["data"]["text/plain"] for shown in result["results"]] == ["{'shown': 1}"]
    streamed = [m["params"]["text"] for m in server.notifications(request) if m["method"] == "code.output"]
    assert "".join(streamed) == "last words\n"
    server.result("context.delete", {"id": context})


def test_the_reason_native_code_writes_before_it_exits_arrives_with_the_crash(server):
    """Native code that gives up (`exit()` from C: OpenBLAS when an allocation fails) writes its
    reason to descriptor 2 first: it was lost (the worker ended before relaying it)."""
    context = create(server)["id"]
    result = run(server, context, "import ctypes, os\nos.write(2, b'fatal: the reason\\n')\nctypes.CDLL(None).exit(1)")
    assert result["status"] == "crashed" and "exited with code 1" in result["error"]["value"]
    assert result["stderr"] == "fatal: the reason\n"
    server.result("context.delete", {"id": context})


@pytest.mark.parametrize("code, stream, expected, status", [
    ("import os, ctypes\nos.write(1, b'written before _exit\\n')\nctypes.CDLL(None)._exit(4)",
     "stdout", ["written before _exit\n"], "exited with code 4"),
    # faulthandler's watchdog writes the threads' tracebacks to descriptor 2, then calls `_exit(1)`.
    ("import faulthandler, time\nfaulthandler.dump_traceback_later(0.2, exit=True)\ntime.sleep(5)",
     "stderr", ["Timeout (0:00:00.200000)!\n", "Thread 0x", " (most recent call first):\n", '  File "<cell-'],
     "exited with code 1"),
], ids=["ctypes-_exit", "faulthandler-exit"])
def test_output_written_just_before_a_raw_exit_arrives_first(pykernel_bin, code, stream, expected, status):
    """What a run wrote to its descriptors right before the worker left through C's `_exit`
    (no signal, no `atexit`: ctypes, faulthandler's `exit=True`) arrives before the `crashed`
    answer and is in it, as python3 shows it: it died in the worker's capture with the worker
    (10 of 10 lost)."""
    raw = RawServer(pykernel_bin, ["--isolation", "process", "--pool-size", "2"])
    try:
        for _ in range(10):
            context = raw.result("context.create", {}, timeout=60)["id"]
            request = raw.request("code.run", {"context": context, "code": code})
            result = raw.response(request, timeout=30)["result"]
            assert result["status"] == "crashed" and status in result["error"]["value"], result
            assert all(part in result[stream] for part in expected), result
            streamed = "".join(m["params"]["text"] for m in raw.notifications(request)
                               if m["method"] == "code.output" and m["params"]["stream"] == stream)
            assert streamed == result[stream]
            raw.result("context.delete", {"id": context})
    finally:
        raw.kill()


def test_worker_dead_while_idle_is_found_on_next_run(server):
    context = create(server)
    run(server, context["id"], "import os\npid = os.getpid()")
    pid = int(run(server, context["id"], "print(pid)")["stdout"])
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: {c["id"]: c for c in server.result("context.list")["contexts"]}[context["id"]]["state"] == "dead",
               what="the context to be dead")
    reply = server.call("code.run", {"context": context["id"], "code": "1"})
    assert reply["error"]["code"] == -32006
    server.result("context.delete", {"id": context["id"]})


def test_parallel_runs(server):
    first, second = create(server)["id"], create(server)["id"]
    # Both runs wait for a file the other one writes: they can only finish if they run at once.
    barrier = f"/tmp/pykernel-iso-{os.getpid()}"
    code = ("import os, time\nopen('{mine}', 'w').close()\n"
            "deadline = time.time() + 10\n"
            "while not os.path.exists('{theirs}') and time.time() < deadline: time.sleep(0.01)\n"
            "print(os.path.exists('{theirs}'))")
    a = server.request("code.run", {"context": first, "code": code.format(mine=barrier + "a", theirs=barrier + "b")})
    b = server.request("code.run", {"context": second, "code": code.format(mine=barrier + "b", theirs=barrier + "a")})
    assert server.response(a, timeout=30)["result"]["stdout"] == "True\n"
    assert server.response(b, timeout=30)["result"]["stdout"] == "True\n"
    for suffix in "ab":
        os.unlink(barrier + suffix)
    for context in (first, second):
        server.result("context.delete", {"id": context})


def test_delete_with_run_in_progress(server):
    context = create(server)["id"]
    request = server.request("code.run", {"context": context, "code": "print('x', flush=True)\nimport time\ntime.sleep(60)"})
    server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == request)
    server.result("context.delete", {"id": context})
    result = server.response(request, timeout=10)["result"]
    assert result["status"] == "interrupted"
    # As a namespace context's stop records (protocol.md's statuses): the value is empty.
    assert result["error"] == {"name": "KeyboardInterrupt", "value": "", "traceback":
                               "KeyboardInterrupt: The context was deleted (or the server shut down) while the run was in "
                               "progress; its worker process was killed.\n"}, result
    assert server.call("code.run", {"context": context, "code": "1"})["error"]["code"] == -32001


def lines_of(server, request):
    """Indexes, in arrival order, of the messages about `request`: its notifications and response."""
    return [(index, "id" in message) for index, message in enumerate(server.messages_since(0))
            if message.get("id") == request
            or ("id" not in message and isinstance(message.get("params"), dict) and message["params"].get("request_id") == request)]


@pytest.mark.parametrize("ending", ["delete", "crash", "return"])
def test_a_flood_of_output_ends_with_the_response_and_nothing_after_it(server, ending, tmp_path):
    """A worker's notifications reach the client on the thread that reads the worker, its end
    (the worker's answer, or the server's when the worker died or the context was deleted) from
    whichever thread ends the run: the response is still the request's last line, after every
    notification, and nothing about the request follows it."""
    context = create(server)["id"]
    go = tmp_path / "go"
    # The flood starts once the test has the first line (so some output was relayed, even when
    # the worker is then killed with output it has not sent yet).
    start = f"import os, time\nprint('x' * 2000, flush=True)\nwhile not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
    flood = {
        "delete": "while True: print('x' * 2000)",
        "crash": "import signal, sys\nfor _ in range(2999): print('x' * 2000)\nsys.stdout.flush()\nos.kill(os.getpid(), signal.SIGKILL)",
        "return": "for _ in range(2999): print('x' * 2000)",
    }[ending]
    request = server.request("code.run", {"context": context, "code": start + flood})
    server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == request)
    go.touch()
    if ending == "delete":
        server.result("context.delete", {"id": context})
    result = server.response(request, timeout=30)["result"]
    assert result["status"] == {"delete": "interrupted", "crash": "crashed", "return": "ok"}[ending]
    # Another run's output and response come through the same lane after anything still queued.
    other = create(server)["id"]
    assert run(server, other, "print('after')")["stdout"] == "after\n"
    lines = lines_of(server, request)
    assert lines[-1][1], "the response is the request's last line"
    assert sum(is_response for _, is_response in lines) == 1
    streamed = sum(len(m["params"]["text"]) for m in server.notifications(request) if m.get("method") == "code.output")
    # All of it when the run returns; a worker killed mid-stream loses what it had not sent.
    assert streamed == 3000 * 2001 if ending == "return" else 2001 <= streamed <= 3000 * 2001
    for context_id in {other, context} - ({context} if ending == "delete" else set()):
        server.result("context.delete", {"id": context_id})


def test_runs_written_together_reach_each_worker_in_order_and_an_interrupt_follows_its_run(server):
    """Requests read together are forwarded to each worker in one write: every run is answered
    in its context's order, and an interrupt written in the same write as the run of its context
    stops that run."""
    contexts = [create(server)["id"] for _ in range(8)]
    sleeping = create(server)["id"]
    for context in contexts + [sleeping]:
        run(server, context, "n = 0")
    lines, ids = [], []
    for step in range(6):
        for context in contexts:
            request = server.next_id()
            ids.append((context, request))
            lines.append({"jsonrpc": "2.0", "id": request, "method": "code.run",
                          "params": {"context": context, "code": f"n += 1\nprint(n, {context!r})"}})
    sleeper = server.next_id()
    lines.append({"jsonrpc": "2.0", "id": sleeper, "method": "code.run",
                  "params": {"context": sleeping, "code": "import time\ntime.sleep(60)"}})
    interrupt = server.next_id()
    lines.append({"jsonrpc": "2.0", "id": interrupt, "method": "code.interrupt", "params": {"context": sleeping}})
    server.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    counts = {context: 0 for context in contexts}
    for context, request in ids:
        counts[context] += 1
        result = server.response(request, timeout=30)["result"]
        assert (result["status"], result["stdout"]) == ("ok", f"{counts[context]} {context}\n")
    assert server.response(interrupt, timeout=30)["result"] == {"interrupted": True}
    assert server.response(sleeper, timeout=10)["result"]["status"] == "interrupted"
    for context in contexts + [sleeping]:
        server.result("context.delete", {"id": context})


def test_answered_runs_are_not_kept_by_the_server(pykernel_bin):
    """Once a process context's run is answered, the server keeps nothing of it. (Its timeout's
    backstop in the server was a timer that could not be cancelled and held the run, with its
    code, until the timeout had passed: 10 minutes by default; 20,000 runs of 2 KB of code grew
    the server by ~80 MB.)"""
    process = subprocess.Popen([pykernel_bin, "serve", "--pool-size", "1"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        pending = b""
        next_id = 0

        def exchange(requests):
            """Writes the requests at once; returns their responses (parsed)."""
            nonlocal pending, next_id
            first = next_id + 1
            lines = []
            for method, params in requests:
                next_id += 1
                lines.append(json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params}))
            process.stdin.write(("\n".join(lines) + "\n").encode())
            process.stdin.flush()
            responses = []
            while len(responses) < len(requests):
                chunk = os.read(process.stdout.fileno(), 1 << 20)
                assert chunk, "the server ended"
                pending += chunk
                *complete, pending = pending.split(b"\n")
                responses += [message for message in map(json.loads, complete) if "id" in message]
            assert [response["id"] for response in responses] == list(range(first, next_id + 1))
            return responses

        def resident_kib():
            with open(f"/proc/{process.pid}/status") as status:
                return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])

        context = exchange([("context.create", {"isolation": "process"})])[0]["result"]["id"]
        code = "x = 1  # " + "p" * 2000
        batch = [("code.run", {"context": context, "code": code})] * 1000
        exchange(batch)  # the allocator's arenas settle
        before = resident_kib()
        for _ in range(20):
            assert all(response["result"]["status"] == "ok" for response in exchange(batch))
        grown = resident_kib() - before
        assert grown < 25_000, f"20,000 answered runs grew the server by {grown} KiB"
    finally:
        process.stdin.close()
        assert process.wait(30) == 0


def test_bad_input(server):
    bad = server.call("context.create", {"isolation": "thread"})
    assert bad["error"]["code"] == -32602
    assert bad["error"]["data"] == {"reason": "invalid_argument", "field": "isolation"}
    assert server.call("context.create", {"isolation": "process", "cwd": "/no/such/dir"})["error"]["data"]["field"] == "cwd"
    assert server.call("context.restart", {"id": "nope"})["error"]["code"] == -32001
    busy_context = create(server)["id"]
    request = server.request("code.run", {"context": busy_context, "code": "print('x', flush=True)\nimport time\ntime.sleep(60)"})
    server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == request)
    busy = server.call("context.restart", {"id": busy_context})
    assert busy["error"]["code"] == -32003 and busy["error"]["data"]["reason"] == "interpreter_busy"
    server.result("context.delete", {"id": busy_context})
    server.response(request, timeout=10)
    namespace = server.result("context.create", {})
    assert namespace["isolation"] == "namespace"
    assert server.call("context.restart", {"id": namespace["id"]})["error"]["data"]["field"] == "id"
    server.result("context.delete", {"id": namespace["id"]})


def test_kernel_info_reports_pool(server):
    info = server.result("kernel.info")
    assert "context.restart" in info["methods"]
    isolation = info["isolation"]
    assert isolation["default"] == "namespace" and isolation["pool"]["size"] == 2
    assert isolation["workers_alive"] >= 0


def idle_processes(server):
    """The processes of an idle server: its pool's workers and the fork server."""
    isolation = server.result("kernel.info")["isolation"]
    return isolation["pool"]["ready"] + (1 if isolation["fork_server"] else 0)


def test_many_contexts_leave_no_process_or_descriptor(server):
    wait_until(lambda: server.result("kernel.info")["isolation"]["pool"]["ready"] == 2, what="a full pool")
    # Workers of contexts deleted by earlier tests may still be ending.
    wait_until(lambda: len(descendants(server.process.pid)) == idle_processes(server), what="only idle processes")
    before_fds = len(os.listdir(f"/proc/{server.process.pid}/fd"))
    before_procs = descendants(server.process.pid)
    for _ in range(20):
        context = create(server)["id"]
        assert run(server, context, "print(1)")["stdout"] == "1\n"
        server.result("context.delete", {"id": context})
    wait_until(lambda: server.result("kernel.info")["isolation"]["pool"]["ready"] == 2, what="a full pool")

    def settled():
        return (len(os.listdir(f"/proc/{server.process.pid}/fd")) == before_fds
                and len(descendants(server.process.pid)) == len(before_procs))
    wait_until(settled, what=f"no leaked process or descriptor (fds {before_fds}, processes {len(before_procs)})")


def test_ids_made_out_of_file_descriptors_are_distinct(pykernel_bin):
    # Foundation's UUID() reads /dev/urandom on Linux and answers the all-zero UUID when it cannot
    # open it: out of descriptors, process contexts were created with one id, each replacing the
    # last in the server's records. Every id now comes from getrandom, which needs no descriptor.
    import resource

    raw = RawServer(pykernel_bin, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))
    try:
        # The namespace `default` runs in the server's process: its code takes every descriptor left.
        taken = raw.result("code.run", {"code": (
            "import os\nheld = []\n"
            "try:\n    while True: held.append(os.open('/dev/null', os.O_RDONLY))\n"
            "except OSError as e: print(e.errno)\n")})
        assert taken["stdout"] == "24\n", taken  # EMFILE
        ids = [raw.result("context.create", {"isolation": isolation})["id"]
               for isolation in ["process"] * 5 + ["namespace"] * 5]
        assert len(set(ids)) == len(ids) and not any(i.startswith("00000000-") for i in ids), ids
        raw.result("code.run", {"code": "for fd in held: os.close(fd)"})
        listed = [c["id"] for c in raw.result("context.list")["contexts"]]
        assert sorted(listed) == sorted(["default"] + ids)
        for context in ids:
            answer = raw.call("code.run", {"context": context, "code": "print(2)"}, timeout=30)
            if "error" in answer:  # a worker started while no descriptor was left is dead, and says so
                assert answer["error"]["code"] == -32006 and "Too many open files" in answer["error"]["message"]
                raw.result("context.restart", {"id": context}, timeout=30)
                answer = raw.call("code.run", {"context": context, "code": "print(2)"}, timeout=30)
            assert answer["result"]["stdout"] == "2\n"
    finally:
        raw.kill()


def test_deleting_contexts_of_a_stopped_fork_server_stalls_nothing(pykernel_bin):
    """Each `context.delete` of a forked worker's context also asks its fork server to kill the
    group; with the fork server stopped (SIGSTOP: a context's code can do it to its parent) those
    messages filled its socket, and the request reader blocked in `sendmsg` until the fork server
    was killed (~20 s for 300 deletes) or for good. They are dropped when the socket is full (the
    server kills the group itself)."""
    raw = RawServer(pykernel_bin, ["--isolation", "process", "--pool-size", "1"])
    fork_server = None
    try:
        contexts = [raw.result("context.create", {}, timeout=60)["id"] for _ in range(300)]
        fork_server = raw.result("kernel.info")["isolation"]["fork_server"]["pid"]
        os.kill(fork_server, signal.SIGSTOP)
        for context in contexts:
            raw.request("context.delete", {"id": context})
        started = time.monotonic()
        assert "result" in raw.call("kernel.info", timeout=30)
        assert time.monotonic() - started < 5
        os.kill(fork_server, signal.SIGCONT)
        fresh = raw.result("context.create", {}, timeout=60)["id"]
        assert run(raw, fresh, "print(6 * 7)")["stdout"] == "42\n"
    finally:
        if fork_server:
            with contextlib.suppress(ProcessLookupError):
                os.kill(fork_server, signal.SIGCONT)
        raw.kill()


@pytest.mark.parametrize("how", ["shutdown", "SIGTERM"])
def test_default_process_isolation_and_shutdown_leaves_nothing(pykernel_bin, how):
    raw = RawServer(pykernel_bin, ["--isolation", "process", "--pool-size", "1"])
    try:
        info = raw.result("kernel.info")
        assert info["isolation"]["default"] == "process"
        default = {c["id"]: c for c in raw.result("context.list")["contexts"]}["default"]
        assert default["isolation"] == "process"
        assert raw.result("code.run", {"code": "import os\nprint(os.getpid())"})["stdout"].strip() != str(raw.process.pid)
        assert raw.result("context.create", {})["isolation"] == "process"
        assert raw.result("context.create", {"isolation": "namespace"})["isolation"] == "namespace"
        assert raw.call("context.delete", {"id": "default"})["error"]["code"] == -32002
        # `default` first, then every other context by id, of either isolation (as `pykernel mcp` lists them).
        for isolation in ["process"] * 5 + ["namespace"] * 3:
            raw.result("context.create", {"isolation": isolation})
        listed = [c["id"] for c in raw.result("context.list")["contexts"]]
        assert len(listed) == 11 and listed == ["default"] + sorted(listed[1:]), listed
        # A grandchild process in a worker, and a run in progress at shutdown.
        raw.result("code.run", {"code": "import subprocess\np = subprocess.Popen(['sleep', '300'])"})
        raw.request("code.run", {"code": "import time\ntime.sleep(300)"})
        workers = descendants(raw.process.pid)
        assert len(workers) >= 3
        if how == "shutdown":
            raw.result("shutdown", {})
        else:
            raw.process.send_signal(signal.SIGTERM)
        assert raw.wait_exit() == 0
        wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), what="every worker gone")
    finally:
        raw.kill()


@pytest.mark.parametrize("default_isolation", ["namespace", "process"])
def test_requests_read_after_shutdown_get_the_documented_answers(pykernel_bin, default_isolation):
    """protocol.md (End of input, shutdown, SIGTERM): what is read after a `shutdown` is answered
    as after it, whatever the shutdown has done by then. With a process context's run holding the
    shutdown up, a `code.run` read after it was started (answered `interrupted`) instead of
    -32005, a process `context.create` made a `starting` context, and `context.list` showed
    `default` as the namespace manager's (no `state`) once the workers were ended."""
    raw = RawServer(pykernel_bin, ["--isolation", default_isolation, "--pool-size", "1"])
    try:
        context = raw.result("context.create", {"isolation": "process"})["id"]
        long = raw.request("code.run", {"context": context, "code": "import time\nprint('s', flush=True)\ntime.sleep(30)"})
        raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == long, what="the run in progress")
        lines = [("shutdown", None), ("code.run", {"code": "print(1)"}), ("code.run", {"code": "print(1)", "context": context}),
                 ("context.list", None), ("context.create", {"isolation": "process"}), ("context.restart", {"id": context}),
                 ("code.interrupt", {"context": context}), ("context.delete", {"id": context}), ("context.list", None)]
        ids = [raw.next_id() for _ in lines]
        raw.send(b"".join(json.dumps({"jsonrpc": "2.0", "id": id, "method": method, **({"params": params} if params else {})}).encode()
                          + b"\n" for id, (method, params) in zip(ids, lines)))
        assert raw.wait_exit() == 0
        raw.join_output()
        answers = [raw.response(id) for id in ids]
        assert raw.response(long)["result"]["status"] == "interrupted"
        assert answers[0]["result"] == {}
        for refused in (answers[1], answers[2], answers[4], answers[5]):
            assert (refused.get("error") or {}).get("code") == -32005, refused
        assert answers[6]["result"] == {"interrupted": False}, answers[6]
        assert answers[7]["result"] == {}, answers[7]
        default = {"id": "default", "language": "python", "cwd": os.getcwd(), "isolation": default_isolation}
        if default_isolation == "process":
            default["state"] = "alive"
        first, last = (answer["result"]["contexts"] for answer in (answers[3], answers[8]))
        assert first[0] == default and [c["id"] for c in first] == ["default", context], first
        assert (first[1]["isolation"], first[1]["state"]) == ("process", "alive"), first
        assert last == [default], last
    finally:
        raw.kill()


def test_end_of_input_leaves_nothing(pykernel_bin):
    raw = RawServer(pykernel_bin, ["--pool-size", "2"])
    try:
        context = raw.result("context.create", {"isolation": "process"})["id"]
        raw.result("code.run", {"context": context, "code": "import subprocess\np = subprocess.Popen(['sleep', '300'])"})
        workers = descendants(raw.process.pid)
        assert workers
        raw.close_stdin()
        assert raw.wait_exit() == 0
        wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), what="every worker gone")
    finally:
        raw.kill()


def test_preload_failure_names_the_module(pykernel_bin, tmp_path):
    import subprocess
    result = subprocess.run([pykernel_bin, "serve", "--preload", "json,no_such_module_xyz"],
                            input=b"", capture_output=True, timeout=60)
    assert result.returncode != 0
    assert b"no_such_module_xyz" in result.stderr


def test_preload_in_pool_workers(pykernel_bin):
    raw = RawServer(pykernel_bin, ["--pool-size", "1", "--preload", "decimal"])
    try:
        context = raw.result("context.create", {"isolation": "process"})["id"]
        result = raw.result("code.run", {"context": context, "code": "import sys\nprint('decimal' in sys.modules)"})
        assert result["stdout"] == "True\n"
    finally:
        raw.close_stdin()
        raw.wait_exit()
        raw.kill()


def test_python_client(pykernel_bin):
    from pykernel import ContextDeadError, PyKernel

    with PyKernel(pykernel_bin) as client:
        context = client.create_context(isolation="process", memory_limit_mb=500, cpu_time_limit_s=100)
        assert context.isolation == "process" and context.state in ("alive", "starting")
        assert client.run_code("x = 3\nprint(x)", context=context).stdout == "3\n"
        crashed = client.run_code("import os\nos.kill(os.getpid(), 9)", context=context)
        assert crashed.status == "crashed" and crashed.error.name == "WorkerCrashed"
        with pytest.raises(ContextDeadError) as raised:
            client.run_code("print(x)", context=context)
        assert raised.value.code == -32006 and raised.value.reason == "context_dead"
        assert [c.state for c in client.list_contexts() if c.id == context.id] == ["dead"]
        restarted = client.restart_context(context)
        assert restarted.id == context.id and restarted.state == "alive"
        assert client.run_code("print('x' in globals())", context=context).stdout == "False\n"
        assert client.create_context().isolation == "namespace"
        client.delete_context(context)


def test_memory_limit(server):
    limited = create(server, memory_limit_mb=200)
    assert limited["memory_limit_mb"] == 200
    big = run(server, limited["id"], "x = bytearray(400 * 1024 * 1024)")
    assert big["status"] == "error" and big["error"]["name"] == "MemoryError"
    assert run(server, limited["id"], "y = bytearray(20 * 1024 * 1024)\nprint(len(y))")["stdout"] == "20971520\n"
    # A thread still starts under the limit (one malloc arena).
    threaded = run(server, limited["id"], "import threading\nt = threading.Thread(target=lambda: bytearray(10**6))\nt.start(); t.join()\nprint('ok')")
    assert threaded["stdout"] == "ok\n"
    restarted = server.result("context.restart", {"id": limited["id"]})
    assert restarted["memory_limit_mb"] == 200
    assert run(server, limited["id"], "x = bytearray(400 * 1024 * 1024)")["error"]["name"] == "MemoryError"
    server.result("context.delete", {"id": limited["id"]})
    for bad in (0, -5, "lots", 1.5, 10**15, 2**63):
        reply = server.call("context.create", {"isolation": "process", "memory_limit_mb": bad})
        assert reply["error"]["code"] == -32602 and reply["error"]["data"]["field"] == "memory_limit_mb", reply
    namespace = server.call("context.create", {"memory_limit_mb": 100})
    assert namespace["error"]["data"]["field"] == "memory_limit_mb"


def test_large_output_is_relayed_whole(server):
    context = create(server)["id"]
    request = server.request("code.run", {"context": context, "max_output_bytes": 1000,
                                          "code": "for i in range(100000):\n    print('x' * 99)"})
    result = server.response(request, timeout=60)["result"]
    assert result["status"] == "ok" and result["stdout_truncated"]
    assert result["stdout_omitted_bytes"] == 100 * 100000 - 1000
    streamed = sum(len(n["params"]["text"]) for n in server.notifications(request))
    assert streamed == 100 * 100000
    server.result("context.delete", {"id": context})


ALLOCATING_THREADS = (
    "import threading, random\n"
    "def work(seed, out):\n"
    "    rng = random.Random(seed)\n"
    "    kept = []\n"
    "    for i in range(5000):\n"
    "        size = rng.choice((8, 24, 100, 600, 5000, 70000, 200000))\n"
    "        kept.append(bytes([i % 251]) * size if i % 3 else {str(i): [i] * (size // 64)})\n"
    "        if len(kept) > 50:\n"
    "            del kept[rng.randrange(len(kept))]\n"
    "    out[seed] = sum(len(x) for x in kept)\n"
    "out = {}\n"
    "threads = [threading.Thread(target=work, args=(n, out)) for n in range(4)]\n"
    "for t in threads: t.start()\n"
    "for t in threads: t.join()\n"
    "print(sorted(out))\n"
    "print('x' * 3_000_000)"
)


def test_forked_workers_allocate_freely(server):
    """The fork server took its heap's free chunks before its first fork (so that children
    allocate from fresh pages): forked workers, one after the other and side by side, still
    allocate and free in threads, print megabytes, time out and keep their state."""
    contexts = [create(server)["id"] for _ in range(3)]
    requests = [server.request("code.run", {"context": c, "code": ALLOCATING_THREADS}) for c in contexts]
    for request in requests:
        result = server.response(request, timeout=120)["result"]
        assert result["status"] == "ok", result
        assert result["stdout"].startswith("[0, 1, 2, 3]\n")
        assert len(result["stdout"]) + result["stdout_omitted_bytes"] == len("[0, 1, 2, 3]\n") + 3_000_001
    timed_out = run(server, contexts[0], "x = [bytes(1000) for _ in range(1000)]\nimport time\nwhile True: time.sleep(0.01)", timeout=0.5)
    assert timed_out["status"] == "timeout"
    assert run(server, contexts[0], "print(len(x), sum(map(len, x)))")["stdout"] == "1000 1000000\n"
    for context in contexts:
        server.result("context.delete", {"id": context})


def test_cpu_time_limit(server):
    context = create(server, cpu_time_limit_s=0.5)
    assert context["cpu_time_limit_s"] == 0.5
    # Sleeping uses no CPU time: the limit is per run, and counts CPU, not wall time.
    assert run(server, context["id"], "import time\ntime.sleep(1)\nprint('slept')")["stdout"] == "slept\n"
    started = time.monotonic()
    result = run(server, context["id"], "while True:\n    pass")
    assert result["status"] == "timeout" and "CPU time" in result["error"]["value"]
    assert time.monotonic() - started < 10
    assert server.call("code.run", {"context": context["id"], "code": "1"})["error"]["code"] == -32006
    assert server.result("context.restart", {"id": context["id"]})["cpu_time_limit_s"] == 0.5
    server.result("context.delete", {"id": context["id"]})
    # Counted in nanoseconds: a positive limit below 1 ns is 1 ns (it was 0 and not enforced).
    tiny = create(server, cpu_time_limit_s=1e-320)
    assert tiny["cpu_time_limit_s"] == 1e-9
    server.result("context.delete", {"id": tiny["id"]})
    for bad in (0, -1, "x"):
        reply = server.call("context.create", {"isolation": "process", "cpu_time_limit_s": bad})
        assert reply["error"]["data"]["field"] == "cpu_time_limit_s", reply
    assert server.call("context.create", {"cpu_time_limit_s": 1})["error"]["data"]["field"] == "cpu_time_limit_s"


def process_state(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_contexts_are_forked_by_the_fork_server(server):
    isolation = server.result("kernel.info")["isolation"]
    assert isolation["pool"]["worker_start"] == "fork"
    fork_server = isolation["fork_server"]["pid"]
    with open(f"/proc/{fork_server}/stat") as stat:
        assert int(stat.read().rsplit(")", 1)[1].split()[1]) == server.process.pid
    context = create(server)["id"]
    out = run(server, context, "import os\nprint(os.getpid(), os.getppid(), os.getpgid(0), os.getsid(0))")["stdout"].split()
    pid, parent, group, session = map(int, out)
    assert parent == fork_server
    assert group == pid and session == pid  # a session of its own: its process group is killed with it
    server.result("context.delete", {"id": context})


def test_burst_of_100_creations_leaves_no_zombie_or_descriptor(server):
    wait_until(lambda: server.result("kernel.info")["isolation"]["pool"]["ready"] == 2, what="a full pool")
    wait_until(lambda: len(descendants(server.process.pid)) == idle_processes(server), what="only idle processes")
    before_fds = len(os.listdir(f"/proc/{server.process.pid}/fd"))
    ids = [server.request("context.create", {"isolation": "process"}) for _ in range(100)]
    contexts = [server.response(id, timeout=120)["result"]["id"] for id in ids]
    runs = [server.request("code.run", {"context": c, "code": "1 + 1"}) for c in contexts]
    for id in runs:
        assert server.response(id, timeout=120)["result"]["status"] == "ok"
    assert server.result("kernel.info")["isolation"]["workers_alive"] == 100
    for context in contexts:
        server.result("context.delete", {"id": context})
    wait_until(lambda: server.result("kernel.info")["isolation"]["pool"]["ready"] == 2, what="a full pool")

    def settled():
        processes = descendants(server.process.pid)
        return (len(processes) == idle_processes(server)
                and len(os.listdir(f"/proc/{server.process.pid}/fd")) == before_fds
                and not any(process_state(pid) == "Z" for pid in processes if os.path.exists(f"/proc/{pid}")))
    wait_until(settled, timeout=30, what="no zombie, no leaked process or descriptor")


def test_fork_server_killed_is_restarted_and_contexts_go_on(pykernel_bin):
    raw = RawServer(pykernel_bin, ["--pool-size", "1", "--log-level", "info"])
    try:
        context = raw.result("context.create", {"isolation": "process"})["id"]
        run(raw, context, "x = 41")
        first = raw.result("kernel.info")["isolation"]["fork_server"]["pid"]
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: (raw.result("kernel.info")["isolation"]["fork_server"] or {}).get("pid") not in (None, first),
                   what="a new fork server")
        assert b"restarting it" in raw.stderr
        assert raw.result("kernel.info")["isolation"]["fork_server"]["restarts"] == 1
        # The context whose worker the dead fork server forked keeps its state.
        assert run(raw, context, "print(x + 1)")["stdout"] == "42\n"
        fresh = raw.result("context.create", {"isolation": "process"})["id"]
        out = run(raw, fresh, "import os\nprint(os.getppid())")["stdout"]
        assert int(out) == raw.result("kernel.info")["isolation"]["fork_server"]["pid"]
        # An orphaned worker that crashes is still answered `crashed`.
        crashed = run(raw, context, "import os\nos.kill(os.getpid(), 9)")
        assert crashed["status"] == "crashed" and crashed["error"]["name"] == "WorkerCrashed"
        workers = descendants(raw.process.pid)
        raw.close_stdin()
        assert raw.wait_exit() == 0
        wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), what="every worker gone")
    finally:
        raw.kill()


def test_messages_about_default_name_only_what_it_allows(pykernel_bin):
    # `default` cannot be deleted: a dead process `default` was told "context.delete removes it",
    # and a restart of the namespace `default` "delete it and create a new one".
    raw = RawServer(pykernel_bin, ["--isolation", "process", "--pool-size", "1"])
    try:
        created = raw.result("context.create", {})["id"]
        for context in ("default", created):
            assert run(raw, context, "import os\nos.kill(os.getpid(), 9)")["status"] == "crashed"
        dead = {context: raw.call("code.run", {"context": context, "code": "1"})["error"] for context in ("default", created)}
        assert all(error["code"] == -32006 for error in dead.values()), dead
        assert dead["default"]["message"].endswith("; context.restart gives it a fresh worker."), dead
        assert dead[created]["message"].endswith("; context.restart gives it a fresh worker, context.delete removes it."), dead
    finally:
        raw.kill()
    raw = RawServer(pykernel_bin)
    try:
        created = raw.result("context.create", {})["id"]
        refused = {context: raw.call("context.restart", {"id": context})["error"] for context in ("default", created)}
        assert all(error["code"] == -32602 and error["data"]["field"] == "id" for error in refused.values()), refused
        assert refused["default"]["message"] == (
            "Only process contexts can be restarted; default is a namespace context (create a new context instead).")
        assert refused[created]["message"] == (
            f"Only process contexts can be restarted; {created} is a namespace context (delete it and create a new one).")
    finally:
        raw.kill()


def running(pid):
    """Whether process pid exists and is not a zombie."""
    try:
        return process_state(pid) != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("end", ["shutdown", "SIGKILL"])
def test_after_a_fork_server_restart_its_workers_groups_still_end(pykernel_bin, end):
    # The workers the dead fork server forked were killed through it, which did nothing once it
    # was gone: their subprocesses (same process group) outlived context.delete and shutdown, and
    # a killed server left them running, a run without a timeout forever.
    raw = RawServer(pykernel_bin, ["--pool-size", "1"])
    try:
        deleted, ended = (raw.result("context.create", {"isolation": "process"})["id"] for _ in range(2))
        worker = int(run(raw, ended, "import os\nprint(os.getpid())")["stdout"])
        run(raw, deleted, "1")
        first = raw.result("kernel.info")["isolation"]["fork_server"]["pid"]
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: (raw.result("kernel.info")["isolation"]["fork_server"] or {}).get("pid") not in (None, first),
                   what="a new fork server")
        start = "import subprocess\np = subprocess.Popen(['sleep', '300'])\nprint(p.pid, flush=True)\n"
        child = int(run(raw, deleted, start)["stdout"])
        raw.result("context.delete", {"id": deleted})
        wait_until(lambda: not running(child), what="the deleted context's subprocess ended")
        if end == "shutdown":
            child = int(run(raw, ended, start)["stdout"])
            raw.result("shutdown", {})
            assert raw.wait_exit() == 0
        else:
            request = raw.request("code.run", {"context": ended, "timeout": 0,
                                               "code": start + "import time\nwhile True: time.sleep(0.05)\n"})
            output = raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == request)
            child = int(output["params"]["text"])
            raw.process.kill()
            raw.wait_exit()
        wait_until(lambda: not running(child) and not running(worker), what="the worker and its subprocess ended")
    finally:
        raw.kill()


def test_fork_server_with_another_thread_refuses_to_fork(pykernel_bin, tmp_path, monkeypatch):
    # A preloaded module that starts a thread: forking then would lose that thread in the child.
    (tmp_path / "starts_a_thread.py").write_text(
        "import threading, time\nthreading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    raw = RawServer(pykernel_bin, ["--pool-size", "1", "--preload", "starts_a_thread"])
    try:
        context = raw.result("context.create", {"isolation": "process"}, timeout=60)["id"]
        assert run(raw, context, "print('still served')")["stdout"] == "still served\n"
        isolation = raw.result("kernel.info")["isolation"]
        assert isolation["pool"]["worker_start"] == "spawn" and isolation["fork_server"] is None
        assert b"refusing to fork: this process has 2 threads" in raw.stderr
    finally:
        raw.close_stdin()
        raw.wait_exit()
        raw.kill()


def test_thousands_of_creations_and_deletions_back_to_back_are_all_answered_and_leave_no_worker(pykernel_bin):
    """Each deletion has the fork server kill a worker and report its exit while it forks the
    next ones: before, a thread sending a request held the lock the server's reading thread needs
    to record an exit report, while the fork server, waiting to send its reports, read no more
    requests. All three waited for good (within 500 to 3,000 cycles), and the server then ignored
    the end of its input. (Its own pipe reader: RawServer's is slow for thousands of messages.)"""
    process = subprocess.Popen([pykernel_bin, "serve", "--isolation", "process"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    pending = b""

    def call(id, method, params):
        nonlocal pending
        process.stdin.write(json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).encode() + b"\n")
        process.stdin.flush()
        deadline = time.monotonic() + 10
        while True:
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                message = json.loads(line)
                if message.get("id") == id:
                    return message
            left = deadline - time.monotonic()
            assert left > 0 and select.select([process.stdout], [], [], left)[0], f"{method} #{id} not answered within 10 s"
            chunk = os.read(process.stdout.fileno(), 1 << 16)
            assert chunk, "the server ended its output"
            pending += chunk

    try:
        for cycle in range(3000):
            context = call(2 * cycle + 1, "context.create", {})["result"]["id"]
            assert call(2 * cycle + 2, "context.delete", {"id": context}) == {"jsonrpc": "2.0", "id": 2 * cycle + 2, "result": {}}
        isolation = call(0, "kernel.info", {})["result"]["isolation"]
        fork_server = isolation["fork_server"]["pid"]

        def only_the_pool_and_the_fork_server():
            isolation = call(0, "kernel.info", {})["result"]["isolation"]
            return (isolation["pool"]["starting"] == 0 and isolation["workers_alive"] == 1  # the default context's
                    and len(descendants(process.pid)) == isolation["pool"]["ready"] + 2)
        wait_until(only_the_pool_and_the_fork_server, timeout=60, what="every deleted context's worker ended")
        assert fork_server in descendants(process.pid)
        process.stdin.close()
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_fork_server_reads_requests_while_its_messages_wait(pykernel_bin, tmp_path):
    """The fork server never waits to send: while the server reads none of its messages (its
    socket's buffer, made as small as can be, is full) it still reads requests. Before, it waited
    in its send of a child's descriptors and the server's requests piled up, then the server's
    sends waited too."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (ours, theirs):
        end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # raised to the least: a few messages fill it
    fork_server = subprocess.Popen(
        [pykernel_bin, "fork-server", "--working-directory", str(tmp_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=False,
        preexec_fn=lambda: os.dup2(theirs.fileno(), 3))  # its control socket is descriptor 3
    theirs.close()
    forks = 12
    try:
        ours.settimeout(30)
        assert ours.recv(256).startswith(b"ready ")
        # Its answers to the forks fill its socket; then requests that it answers nothing.
        for request in [b"fork"] * forks + [b"kill 1"] * 2000:  # 1 is never one of its children
            try:
                ours.send(request)
            except TimeoutError:
                pytest.fail("the fork server stopped reading requests while its messages waited")
        for _ in range(forks):
            message, descriptors, _, _ = socket.recv_fds(ours, 256, 4)
            for descriptor in descriptors:
                os.close(descriptor)
            assert message.startswith(b"child ") and len(descriptors) >= 3, message
    finally:
        ours.close()  # the fork server kills its children and ends
        try:
            assert fork_server.wait(30) == 0
        finally:
            if fork_server.poll() is None:
                fork_server.kill()
                fork_server.wait()


def test_an_interrupt_answered_true_means_the_run_ends_interrupted(server):
    """`code.interrupt` is answered with the worker's own answer: `true` only when the run was
    stopped by it (it answered `true` at once, and a quick run written just before it ended `ok`
    in most tries); the context's first run, sent while its worker is on the way, too."""
    for attempt in range(40):
        context = create(server)["id"] if attempt % 10 == 0 else context
        run_id = server.request("code.run", {"context": context, "code": "x = 1" if attempt % 2 else "import time; time.sleep(0.001)"})
        interrupt_id = server.request("code.interrupt", {"context": context})
        status = server.response(run_id, timeout=30)["result"]["status"]
        interrupted = server.response(interrupt_id, timeout=30)["result"]["interrupted"]
        assert interrupted == (status == "interrupted"), (attempt, interrupted, status)


def _together(server, *calls):
    """Writes requests in one write; returns their ids."""
    ids = [server.next_id() for _ in calls]
    server.send(b"".join(json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).encode() + b"\n"
                         for id, (method, params) in zip(ids, calls)))
    return ids


def test_a_run_read_after_a_restart_runs_in_the_fresh_worker(server):
    """A restart and a run written together: the restart was refused for the run read after it
    (-32003), or the run refused as if restarted before it (-32006), or it ran in the old worker."""
    context = create(server)["id"]
    for attempt in range(10):
        assert run(server, context, "x = 1")["status"] == "ok"
        restart, probe = _together(server, ("context.restart", {"id": context}),
                                   ("code.run", {"context": context, "code": "print(globals().get('x'))"}))
        assert server.response(restart, timeout=30)["result"]["state"] == "alive"
        result = server.response(probe, timeout=30)["result"]
        assert (result["stdout"], result["execution_count"]) == ("None\n", 1), (attempt, result)
    deleted_id = create(server)["id"]
    restart, delete = _together(server, ("context.restart", {"id": deleted_id}), ("context.delete", {"id": deleted_id}))
    assert server.response(delete)["result"] == {}
    reply = server.response(restart, timeout=30)
    assert "result" in reply or (reply["error"]["code"] == -32001 and "deleted while it restarted" in reply["error"]["message"]), reply
    server.result("context.delete", {"id": context})


def test_contexts_deleted_while_starting_do_not_overfill_the_pool(pykernel_bin):
    """Their workers went back to the pool while forks asked for it came too: 4 ready of 2."""
    raw = RawServer(pykernel_bin, ["--pool-size", "2"])
    try:
        wait_until(lambda: raw.result("kernel.info")["isolation"]["pool"]["ready"] == 2, what="the pool")
        ids = [raw.result("context.create", {"isolation": "process"})["id"] for _ in range(6)]
        for context in ids:
            raw.result("context.delete", {"id": context})
        wait_until(lambda: raw.result("kernel.info")["isolation"]["pool"]["starting"] == 0, what="the pool settled")
        time.sleep(0.5)
        pool = raw.result("kernel.info")["isolation"]["pool"]
        assert pool["ready"] + pool["starting"] <= 2, pool
    finally:
        raw.close_stdin()
        assert raw.wait_exit() == 0
        raw.join_output()


def test_restarting_a_context_whose_directory_is_gone_says_so(server, tmp_path):
    """`context.restart` of a process context whose working directory was deleted: -32602
    `invalid_cwd` (it was -32603 `worker_unavailable`, "not expected"); the context keeps its
    state: its runs are refused while the directory is gone, and run again once it is back."""
    directory = tmp_path / "gone"
    directory.mkdir()
    context = create(server, cwd=str(directory))["id"]
    assert run(server, context, "x = 5")["status"] == "ok"
    directory.rmdir()
    error = server.call("context.restart", {"id": context})["error"]
    assert (error["code"], error["data"]) == (-32602, {"reason": "invalid_cwd", "field": "id"}), error
    refused = server.call("code.run", {"context": context, "code": "print(x)"})["error"]
    assert (refused["code"], refused["data"]["reason"]) == (-32602, "invalid_cwd"), refused
    directory.mkdir()
    assert run(server, context, "print(x)")["stdout"] == "5\n"
    server.result("context.delete", {"id": context})


@pytest.mark.parametrize("end", ["context.delete", "shutdown"])
def test_a_run_ended_by_a_deletion_or_shutdown_has_the_contexts_next_execution_count(pykernel_bin, end):
    """A process context's run answered `interrupted` because its context was deleted, or the
    server shut down, has the execution count it ran with (the context's last + 1), as a
    namespace context's: it said 1 whatever the context had run before."""
    raw = RawServer(pykernel_bin, ["--pool-size", "1"])
    try:
        context = create(raw)["id"]
        for count in (1, 2, 3):
            assert run(raw, context, "1")["execution_count"] == count
        long = raw.request("code.run", {"context": context, "code": "print('s', flush=True)\nimport time\ntime.sleep(60)"})
        raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == long, what="the run in progress")
        raw.result(end, {"id": context} if end == "context.delete" else {})
        result = raw.response(long, timeout=10)["result"]
        assert (result["status"], result["execution_count"]) == ("interrupted", 4), result
    finally:
        raw.kill()


def test_a_process_context_refuses_a_run_past_its_run_queue_limit(pykernel_bin):
    """At most 10,000 runs wait behind a process context's run in progress, as behind a namespace
    context's: the next is refused with -32007 (`run_queue_full`) by the server, naming the
    context, and every run queued then runs."""
    raw = RawServer(pykernel_bin, ["--pool-size", "1"])
    try:
        context = create(raw)["id"]
        blocker = raw.request("code.run", {"context": context, "code": "import time\nprint('h', flush=True)\ntime.sleep(60)"})
        raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == blocker, what="the blocker")
        ids = [raw.next_id() for _ in range(10_001)]
        raw.send(b"".join(json.dumps({"jsonrpc": "2.0", "id": id, "method": "code.run",
                                      "params": {"context": context, "code": f"n = {index}"}}).encode() + b"\n"
                          for index, id in enumerate(ids)))
        refused = raw.response(ids[-1], timeout=60)["error"]
        assert (refused["code"], refused["data"]) == (-32007, {"reason": "run_queue_full"}), refused
        assert context in refused["message"], refused
        assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
        queued = set(ids[:-1])
        deadline = time.monotonic() + 120
        while True:  # one pass over the messages at a time (waiting for each response would be quadratic)
            statuses = {m["id"]: (m.get("result") or {}).get("status")
                        for _, m in list(raw.messages) if is_response(m) and m.get("id") in queued}
            if len(statuses) == len(queued) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(statuses) == len(queued), f"{len(queued) - len(statuses)} queued runs not answered"
        assert set(statuses.values()) == {"ok"}, [item for item in statuses.items() if item[1] != "ok"][:3]
        assert run(raw, context, "print(n)")["stdout"] == "9999\n"
    finally:
        raw.kill()


@pytest.mark.parametrize("stop", ["timeout", "interrupt"])
def test_a_run_stopped_while_the_client_does_not_read_keeps_its_context(pykernel_bin, stop):
    """A run that floods its output while the client reads nothing for longer than the timeout and
    the grace period: the worker stops the run, but its answer waited behind output the server no
    longer read from it (the client's lane full), so the grace period's end killed the worker, the
    context's state lost (a namespace context keeps it). The server now reads a stopped run's
    output further, to the answer: the run ends timeout/interrupted and the state is kept."""
    server = subprocess.Popen([pykernel_bin, "serve", "--isolation", "process"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        def send(id, method, params):
            server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).encode() + b"\n")
            server.stdin.flush()

        answers = {}

        def answer(id):
            while id not in answers:
                message = json.loads(server.stdout.readline())
                if "id" in message:
                    answers[message["id"]] = message
            return answers.pop(id)

        send(1, "code.run", {"code": "state = 'kept'"})
        assert answer(1)["result"]["status"] == "ok"
        flood = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: print('z' * 100)"
        send(2, "code.run", {"code": flood, **({"timeout": 2} if stop == "timeout" else {})})
        if stop == "interrupt":
            time.sleep(1)
            send(3, "code.interrupt", {"context": "default"})
        # Nothing read for longer than the timeout (or the interrupt) plus the 2 s grace period.
        time.sleep(6)
        result = answer(2)["result"]
        assert result["status"] == ("timeout" if stop == "timeout" else "interrupted"), result["error"]
        assert "state is lost" not in result["error"]["traceback"], result["error"]
        if stop == "interrupt":
            assert answer(3)["result"] == {"interrupted": True}
        send(4, "code.run", {"code": "print(state)"})
        assert answer(4)["result"]["stdout"] == "kept\n"
        server.stdin.close()
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
