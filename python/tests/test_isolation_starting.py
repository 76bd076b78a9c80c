"""Process contexts created while no worker is ready (``state: "starting"``, issue 11).

The server runs with ``--pool-size 0``: no worker is ever ready ahead of demand, so every
``context.create {isolation: "process"}`` is answered at once with the context registered and
its worker on the way, and what needs the worker waits for it.
"""

import os
import resource
import signal
import time

import pytest

from pykernel_raw import RawServer
from test_isolation import descendants, wait_until


@pytest.fixture(scope="module")
def server(pykernel_bin):
    raw = RawServer(pykernel_bin, ["--pool-size", "0"])
    yield raw
    raw.close_stdin()
    assert raw.wait_exit() == 0
    raw.join_output()


def create(server, **params):
    context = server.result("context.create", {"isolation": "process", **params})
    assert context["state"] == "starting", context
    return context


def state(server, context):
    listed = server.result("context.list")["contexts"]
    return next(c for c in listed if c["id"] == context)["state"]


def only_the_fork_server(server):
    fork_server = server.result("kernel.info")["isolation"]["fork_server"]["pid"]
    return descendants(server.process.pid) == {fork_server}


def test_first_run_waits_for_the_worker(server):
    context = create(server)["id"]
    assert state(server, context) in ("starting", "alive")
    first = server.result("code.run", {"context": context, "code": "import os\nprint(os.getpid())\nx = 41"}, timeout=30)
    assert first["status"] == "ok" and first["execution_count"] == 1
    assert int(first["stdout"]) != server.process.pid
    assert state(server, context) == "alive"
    assert server.result("code.run", {"context": context, "code": "print(x + 1)"})["stdout"] == "42\n"
    server.result("context.delete", {"id": context})


def test_runs_sent_while_starting_run_in_order(server):
    context = create(server)["id"]
    ids = [server.request("code.run", {"context": context, "code": f"print({n})"}) for n in range(5)]
    results = [server.response(id, timeout=30)["result"] for id in ids]
    assert [r["stdout"] for r in results] == [f"{n}\n" for n in range(5)]
    assert [r["execution_count"] for r in results] == [1, 2, 3, 4, 5]
    server.result("context.delete", {"id": context})


def stopped_fork_server(server):
    """The fork server's pid, once ready, after SIGSTOP: no worker comes until SIGCONT."""
    fork_server = None
    def ready():
        nonlocal fork_server
        info = server.result("kernel.info")["isolation"]["fork_server"]
        fork_server = info and info["ready"] and info["pid"]
        return bool(fork_server)
    wait_until(ready, what="the fork server")
    os.kill(fork_server, signal.SIGSTOP)
    return fork_server


def test_interrupt_while_starting_is_answered_at_once_and_withdraws_the_run(server):
    """The interrupt of a starting context's queued run waited for the worker (answered once it
    had taken the interrupt; never, when no worker came). It is answered at once now: the run is
    withdrawn (answered `interrupted` without running, execution count 0), later ones run."""
    fork_server = stopped_fork_server(server)
    try:
        context = create(server)["id"]
        first = server.request("code.run", {"context": context, "code": "import time\ntime.sleep(60)"})
        second = server.request("code.run", {"context": context, "code": "print('second')"})
        assert server.result("code.interrupt", {"context": context}, timeout=5) == {"interrupted": True}
        result = server.response(first, timeout=5)["result"]
        assert result["status"] == "interrupted" and result["error"]["name"] == "KeyboardInterrupt"
        assert result["execution_count"] == 0 and result["stdout"] == ""
        assert state(server, context) == "starting"
    finally:
        os.kill(fork_server, signal.SIGCONT)
    later = server.response(second, timeout=30)["result"]
    assert later["stdout"] == "second\n" and later["execution_count"] == 1
    assert state(server, context) == "alive"
    server.result("context.delete", {"id": context})


def test_interrupt_with_nothing_to_run_while_starting(server):
    context = create(server)["id"]
    assert server.result("code.interrupt", {"context": context}) == {"interrupted": False}
    assert server.result("code.run", {"context": context, "code": "print('ran')"})["stdout"] == "ran\n"
    server.result("context.delete", {"id": context})


def test_delete_while_starting_leaks_no_worker(server):
    wait_until(lambda: only_the_fork_server(server), what="no worker")
    contexts = [create(server)["id"] for _ in range(5)]
    queued = server.request("code.run", {"context": contexts[0], "code": "print('never')"})
    for context in contexts:
        server.result("context.delete", {"id": context})
    reply = server.response(queued, timeout=30)
    # Deleted before its worker came (-32004), or after the run had been sent (interrupted).
    assert reply.get("error", {}).get("code") == -32004 or reply["result"]["status"] == "interrupted", reply
    assert all(c["id"] not in contexts for c in server.result("context.list")["contexts"])
    # The workers that were on the way are killed when they come.
    wait_until(lambda: only_the_fork_server(server), timeout=30, what="every worker on the way ended")


def test_limits_apply_before_the_first_run(server, tmp_path):
    limited = create(server, memory_limit_mb=200, cwd=str(tmp_path))
    assert limited["memory_limit_mb"] == 200 and limited["cwd"] == str(tmp_path)
    big = server.result("code.run", {"context": limited["id"], "code": "import os\nprint(os.getcwd())\nx = bytearray(400 * 1024 * 1024)"},
                        timeout=30)
    assert big["stdout"] == f"{tmp_path}\n"
    assert big["status"] == "error" and big["error"]["name"] == "MemoryError"
    server.result("context.delete", {"id": limited["id"]})
    cpu = create(server, cpu_time_limit_s=0.5)
    started = time.monotonic()
    spin = server.result("code.run", {"context": cpu["id"], "code": "while True:\n    pass"}, timeout=30)
    assert spin["status"] == "timeout" and "CPU time" in spin["error"]["value"]
    assert time.monotonic() - started < 10
    server.result("context.delete", {"id": cpu["id"]})


def test_validation_errors_are_synchronous(server):
    for params, field in (({"memory_limit_mb": 0}, "memory_limit_mb"), ({"cpu_time_limit_s": -1}, "cpu_time_limit_s"),
                          ({"cwd": "/no/such/dir"}, "cwd"), ({"isolation": "thread"}, "isolation")):
        reply = server.call("context.create", {"isolation": "process", **params})
        assert reply["error"]["code"] == -32602 and reply["error"]["data"]["field"] == field, reply


def test_restart_while_starting(server):
    context = create(server)["id"]
    restarted = server.result("context.restart", {"id": context}, timeout=30)
    assert restarted["state"] == "alive"
    assert server.result("code.run", {"context": context, "code": "print('fresh')"})["stdout"] == "fresh\n"
    server.result("context.delete", {"id": context})
    wait_until(lambda: only_the_fork_server(server), timeout=30, what="the replaced worker ended")


def test_a_worker_that_cannot_start_makes_the_context_dead(pykernel_bin, tmp_path):
    # The directory is gone before the worker comes: the worker cannot create the context there.
    directory = tmp_path / "gone"
    directory.mkdir()
    raw = RawServer(pykernel_bin, ["--pool-size", "0"])
    try:
        # Hold the fork server back: no worker can come before the directory is removed.
        fork_server = None
        def fork_server_ready():
            nonlocal fork_server
            info = raw.result("kernel.info")["isolation"]["fork_server"]
            fork_server = info and info["ready"] and info["pid"]
            return bool(fork_server)
        wait_until(fork_server_ready, what="the fork server")
        os.kill(fork_server, 19)  # SIGSTOP
        try:
            context = raw.result("context.create", {"isolation": "process", "cwd": str(directory)})
            assert context["state"] == "starting"
            queued = raw.request("code.run", {"context": context["id"], "code": "1"})
            directory.rmdir()
        finally:
            os.kill(fork_server, 18)  # SIGCONT
        reply = raw.response(queued, timeout=30)
        assert reply["error"]["code"] == -32006 and reply["error"]["data"]["reason"] == "context_dead", reply
        assert "could not be started" in reply["error"]["message"]
        listed = next(c for c in raw.result("context.list")["contexts"] if c["id"] == context["id"])
        assert listed["state"] == "dead"
        again = raw.call("code.run", {"context": context["id"], "code": "1"})
        assert again["error"]["code"] == -32006
        raw.result("context.delete", {"id": context["id"]})
    finally:
        raw.close_stdin()
        raw.wait_exit()
        raw.kill()


def test_out_of_descriptors_makes_the_contexts_waiting_dead_and_leaks_no_worker(pykernel_bin):
    """When the server has no descriptor left for a forked worker's pipes, the fork server's
    hand-over came truncated: it was logged as an unknown message, the contexts stayed `starting`
    with their runs never answered, and the forked workers were left running. Now such a worker
    is killed and its context is dead, saying why; its runs are answered -32006."""
    limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))
    raw = RawServer(pykernel_bin, ["--pool-size", "0"], preexec_fn=limit)
    try:
        contexts = [raw.result("context.create", {"isolation": "process"})["id"] for _ in range(30)]
        runs = {context: raw.request("code.run", {"context": context, "code": "print('ran')"}) for context in contexts}
        replies = {context: raw.response(request, timeout=30) for context, request in runs.items()}
        dead = [context for context, reply in replies.items() if "error" in reply]
        assert dead, "the descriptors did not run out"
        for context in dead:
            error = replies[context]["error"]
            assert error["code"] == -32006 and error["data"]["reason"] == "context_dead", error
            assert "out of file descriptors" in error["message"], error
        assert all(reply["result"]["stdout"] == "ran\n" for context, reply in replies.items() if context not in dead)
        states = {c["id"]: c["state"] for c in raw.result("context.list")["contexts"] if c["id"] in contexts}
        assert {states[context] for context in dead} == {"dead"}
        assert "starting" not in states.values()
        assert b"unknown message" not in raw.stderr
        for context in contexts:
            raw.result("context.delete", {"id": context})
        # The workers forked for the dead contexts were killed: only the fork server is left.
        fork_server = raw.result("kernel.info")["isolation"]["fork_server"]["pid"]
        wait_until(lambda: descendants(raw.process.pid) == {fork_server}, timeout=30, what="no worker left")
    finally:
        raw.close_stdin()
        raw.wait_exit()
        raw.kill()


def test_a_stopped_fork_server_is_replaced_and_the_runs_that_waited_go_on(pykernel_bin):
    """A fork server stopped by SIGSTOP (alive, serving nothing) left every new context
    `starting` for good: even a run with `timeout: 2` was never answered. A ready fork server
    that hands over no worker asked for within 10 s is killed and restarted now; the creations
    that waited get workers of the next one."""
    raw = RawServer(pykernel_bin, ["--pool-size", "0", "--log-level", "info"])
    fork_server = None
    try:
        fork_server = stopped_fork_server(raw)
        context = create(raw)["id"]
        waited = raw.request("code.run", {"context": context, "code": "print('ran')", "timeout": 2})
        result = raw.response(waited, timeout=40)["result"]
        assert result["status"] == "ok" and result["stdout"] == "ran\n"
        info = raw.result("kernel.info")["isolation"]["fork_server"]
        assert info["pid"] != fork_server and info["restarts"] == 1
        assert b"handed over no worker" in raw.stderr
        assert state(raw, context) == "alive"
        raw.result("context.delete", {"id": context})
    finally:
        if fork_server and os.path.exists(f"/proc/{fork_server}"):
            os.kill(fork_server, signal.SIGCONT)
        raw.close_stdin()
        raw.wait_exit()
        raw.kill()
