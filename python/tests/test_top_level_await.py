"""Top-level ``await`` in cells (as IPython/Jupyter run them) through the real ``pykernel serve``:
values, tasks that outlive their cell, tracebacks, stops, ``async with``/``async for``, a cell
using ``asyncio.run``, and a process context."""

import re
import threading
import time

import pytest

from pykernel.errors import PyKernelTimeoutError
from background_calls import joined, run_in_thread


@pytest.fixture(params=["namespace", "process"])
def context(request, kernel):
    """A fresh context of each kind (a process context is a worker running the same engine)."""
    return kernel.create_context(isolation=request.param)


def test_await_value_and_gather_are_the_main_result(kernel, context):
    result = kernel.run_code(
        "import asyncio\nawait asyncio.sleep(0.01)\n"
        "x = await asyncio.gather(asyncio.sleep(0, 1), asyncio.sleep(0, 2))\nx", context=context)
    assert result.status == "ok", result.error
    assert result.text == "[1, 2]"
    [main] = result.results
    assert main.is_main_result and main.data == {"text/plain": "[1, 2]"}
    assert kernel.run_code("_", context=context).text == "[1, 2]"
    hidden = kernel.run_code("await asyncio.sleep(0, 5);", context=context)
    assert hidden.status == "ok" and hidden.results == []


def test_task_created_in_one_cell_is_awaited_in_the_next(kernel, context):
    kernel.run_code(
        "import asyncio\nasync def work():\n    print('working')\n    await asyncio.sleep(0.01)\n    return 42\n"
        "task = asyncio.create_task(work())\nawait asyncio.sleep(0)\n", context=context)
    result = kernel.run_code("display('displayed')\nawait task", context=context)
    assert result.status == "ok", result.error
    assert [r.data["text/plain"] for r in result.results] == ["'displayed'", "42"]
    assert [r.is_main_result for r in result.results] == [False, True]


def test_exception_after_await_has_the_cells_traceback(kernel, context):
    result = kernel.run_code(
        "import asyncio\nasync def fail():\n    await asyncio.sleep(0)\n    raise ValueError('late')\n"
        "print('before')\nawait fail()\n", context=context)
    assert result.status == "error"
    assert result.stdout == "before\n"
    assert result.error.name == "ValueError" and result.error.value == "late"
    assert result.error.traceback == (
        "Traceback (most recent call last):\n"
        '  File "<cell-1>", line 6, in <module>\n'
        "    await fail()\n"
        '  File "<cell-1>", line 4, in fail\n'
        "    raise ValueError('late')\n"
        "ValueError: late\n")


def test_an_exception_that_hides_its_attributes_after_await_has_the_cells_traceback(kernel, context):
    # Its traceback is read as python3 reads it, not by attribute (the record was a chained
    # "AttributeError: with_traceback" raised by the engine).
    result = kernel.run_code(
        "import asyncio\nclass E(Exception):\n    def __getattribute__(self, name):\n        raise AttributeError(name)\n"
        "await asyncio.sleep(0)\nraise E('hidden')\n", context=context)
    assert (result.status, result.error.name, result.error.value) == ("error", "E", "hidden")
    assert result.error.traceback == (
        'Traceback (most recent call last):\n  File "<cell-1>", line 6, in <module>\n'
        "    raise E('hidden')\nE: hidden\n")


def test_async_with_and_async_for_at_top_level(kernel, context):
    result = kernel.run_code(
        "import asyncio\n"
        "class Resource:\n"
        "    async def __aenter__(self):\n"
        "        print('enter')\n"
        "        return 'resource'\n"
        "    async def __aexit__(self, *exc):\n"
        "        print('exit')\n"
        "async def numbers():\n"
        "    for i in range(3):\n"
        "        await asyncio.sleep(0)\n"
        "        yield i\n"
        "async with Resource() as r:\n"
        "    print(r)\n"
        "async for i in numbers():\n"
        "    print(i)\n", context=context)
    assert result.status == "ok", result.error
    assert result.stdout == "enter\nresource\nexit\n0\n1\n2\n"


def test_asyncio_run_in_a_cell_without_top_level_await(kernel, context):
    result = kernel.run_code("import asyncio\nasync def main():\n    return 7\nasyncio.run(main())", context=context)
    assert result.status == "ok", result.error
    assert result.text == "7"
    # Such a cell runs on no loop, as in python3.
    result = kernel.run_code("asyncio.get_running_loop()", context=context)
    assert result.error.name == "RuntimeError" and result.error.value == "no running event loop"


def test_interrupt_during_await_then_the_loop_still_works(kernel, context):
    started = threading.Event()
    thread, outcome = run_in_thread(
        kernel.run_code,
        "import asyncio\nprint('started', flush=True)\ntry:\n    await asyncio.sleep(1000)\nfinally:\n    print('cleaned up')\n",
        context=context, on_stdout=lambda m: started.set())
    assert started.wait(10)
    time.sleep(0.2)
    begin = time.monotonic()
    assert kernel.interrupt(context) is True
    result = joined(thread, outcome, timeout=10)
    assert time.monotonic() - begin < 2
    assert result.status == "interrupted"
    assert result.stdout == "started\ncleaned up\n"
    assert result.error.name == "KeyboardInterrupt"
    _expect_stopped_at_the_await(result.error.traceback, line=4, last="KeyboardInterrupt")
    assert "<pykernel/" not in result.error.traceback and "base_events" not in result.error.traceback
    assert kernel.run_code("await asyncio.sleep(0.01, 'still working')", context=context).text == "'still working'"


def test_timeout_during_await_then_the_loop_still_works(kernel, context):
    begin = time.monotonic()
    with pytest.raises(PyKernelTimeoutError) as raised:
        kernel.run_code("import asyncio\nawait asyncio.sleep(1000)\n", context=context, timeout=0.5)
    assert time.monotonic() - begin < 2
    result = raised.value.result
    assert result.status == "timeout"
    assert result.error.name == "TimeoutError"
    _expect_stopped_at_the_await(result.error.traceback, line=2, last="TimeoutError: execution exceeded the 0.5 s timeout")
    assert kernel.run_code("await asyncio.sleep(0, 'ok')", context=context).text == "'ok'"


def _expect_stopped_at_the_await(traceback, line, last):
    """The stop's traceback starts at the cell's `await asyncio.sleep(1000)` and ends with `last`."""
    assert traceback.startswith(
        "Traceback (most recent call last):\n"
        f'  File "<cell-1>", line {line}, in <module>\n'
        "    await asyncio.sleep(1000)\n"), traceback
    assert traceback.endswith(f"\n{last}\n"), traceback


def test_a_file_with_top_level_await_is_a_syntax_error_as_in_python3(pykernel_bin, tmp_path):
    import subprocess
    import sys

    program = tmp_path / "program.py"
    program.write_text("import asyncio\nawait asyncio.sleep(0)\n")
    ours = subprocess.run([pykernel_bin, "run", str(program)], capture_output=True, text=True, timeout=60)
    python = subprocess.run([sys.executable, str(program)], capture_output=True, text=True, timeout=60)
    assert ours.returncode == python.returncode == 1
    assert ours.stdout == python.stdout == ""
    assert "SyntaxError: 'await' outside function" in python.stderr
    assert ours.stderr == python.stderr


def test_a_stop_after_the_cells_task_ended_leaves_the_loop_working(kernel, context):
    """A stop that came out of the loop after the cell's task had ended (here an interrupt of a
    callback the cell left) left asyncio's own bookkeeping of that end queued in the loop
    (`run_until_complete`'s callback, which stops the loop): the context's next awaiting run
    was stopped at its first step, `RuntimeError: Event loop stopped before Future completed.`"""
    started = threading.Event()
    thread, outcome = run_in_thread(
        kernel.run_code,
        "import asyncio\ndef spin():\n    print('spinning', flush=True)\n    while True:\n        pass\n"
        "await asyncio.sleep(0)\nasyncio.get_running_loop().call_soon(spin)\n",
        context=context, on_stdout=lambda m: started.set())
    assert started.wait(10)
    assert kernel.interrupt(context) is True
    result = joined(thread, outcome, timeout=10)
    assert result.status == "interrupted"
    # In the loop; or, on a loaded machine, as the print that announced it returned.
    assert result.error.traceback in (
        f'Traceback (most recent call last):\n  File "<cell-1>", line {line}, in spin\n    {source}\nKeyboardInterrupt\n'
        for line, source in [(4, "while True:"), (3, "print('spinning', flush=True)")])
    after = kernel.run_code("await asyncio.sleep(0.001, 'fine')", context=context)
    assert after.status == "ok", after.error
    assert after.text == "'fine'"


# Loops that await, each way asyncio steps a task: a bare yield, a future a callback completes, a
# gather's children, a task group's.
AWAITING_LOOPS = [
    "while True:\n    await asyncio.sleep(0)",
    "loop = asyncio.get_running_loop()\nwhile True:\n    f = loop.create_future()\n"
    "    loop.call_soon(lambda: f.done() or f.set_result(1))\n    await f",
    "while True:\n    await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0.0001))",
    "while True:\n    async with asyncio.TaskGroup() as group:\n        group.create_task(asyncio.sleep(0))",
]


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_every_stop_of_an_awaiting_loop_ends_its_run_at_once(pykernel_bin, isolation):
    """An interrupt or a timeout that landed in asyncio's own code between the loop taking a
    task's next step off its queue and running it lost the step: the cell's task was never woken
    again, its cancellation had nothing to cancel, and the loop waited forever (1 interrupt of
    `while True: await asyncio.sleep(0)` in 8). The run was answered only after the grace period
    ("did not stop"), and every later run of every namespace context was refused (-32003); a
    process context's worker was killed. Now a stop landing in the loop's machinery is delivered
    by the loop (it cancels the cell's task): hundreds of stops of loops that await each end their
    run, at the cell's line, with no frame of the engine or of asyncio's loop, and the context
    goes on working."""
    from pykernel_raw import RawServer

    raw = RawServer(pykernel_bin, ["--pool-size", "1"])
    try:
        context = raw.result("context.create", {"isolation": isolation}, timeout=30)["id"]
        raw.result("code.run", {"context": context, "code": "import asyncio"}, timeout=30)
        timeouts = [0.0005, 0.001, 0.002, 0.005]
        for index in range(240):
            params = {"context": context, "code": "print('looping', flush=True)\n" + AWAITING_LOOPS[index % 4]}
            interrupted = index % 2 == 0
            if not interrupted:
                params["timeout"] = timeouts[index // 2 % 4]
            run = raw.request("code.run", params)
            if interrupted:
                raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == run, timeout=30)
                raw.request("code.interrupt", {"context": context})
            answer = raw.response(run, timeout=30)["result"]
            assert answer["status"] == ("interrupted" if interrupted else "timeout"), answer
            traceback = answer["error"]["traceback"]
            assert "did not stop" not in traceback, (index, traceback)
            if interrupted or answer["stdout"]:
                assert traceback.startswith('Traceback (most recent call last):\n  File "<cell-'), (index, traceback)
            else:  # stopped before its code started, or as it started (at line 0, the frame's first instruction)
                assert traceback.startswith("TimeoutError: execution exceeded the ") or re.fullmatch(
                    r'Traceback \(most recent call last\):\n  File "<cell-\d+>", line 0, in <module>\nTimeoutError: [^\n]*\n',
                    traceback), (index, traceback)
            for machinery in ("<pykernel/", "base_events.py", "/events.py", "_weakrefset.py", "selectors.py"):
                assert machinery not in traceback, (index, traceback)
        after = raw.result("code.run", {"context": context, "code": "await asyncio.sleep(0.001, 'fine')"}, timeout=30)
        assert after["status"] == "ok" and after["results"][0]["data"]["text/plain"] == "'fine'", after
        assert raw.result("code.run", {"code": "print('default')"}, timeout=30)["stdout"] == "default\n"
    finally:
        raw.kill()


def test_a_cell_stopped_as_it_begins_never_runs_later(pykernel_bin):
    """A timeout that landed in the engine's `loop.create_task` for the cell, after asyncio had
    queued the task's first step, left that task in the loop: the run was answered `timeout` with
    nothing run, and its code ran inside the context's next awaiting run (its output in that
    run's, its effects then); its traceback showed asyncio's frames (`_weakrefset.py`,
    `base_events.py`). Now a run stopped before its code starts runs none of it, ever, and says so
    (the `TimeoutError` line alone); one stopped once it started shows its own output and its
    own frames only: the count of the runs that ran is the count of those that showed it."""
    from pykernel_raw import RawServer

    raw = RawServer(pykernel_bin)
    try:
        raw.result("code.run", {"code": "import asyncio\ncount = 0"}, timeout=30)
        shown = 0
        for index in range(450):
            timeout = (0.00005, 0.0001, 0.0002)[index % 3]
            stopped = raw.result("code.run", {
                "code": "global count\ncount += 1\nprint('ran', count)\nawait asyncio.sleep(0)", "timeout": timeout}, timeout=30)
            if stopped["stdout"]:
                shown += 1
                assert stopped["stdout"] == f"ran {shown}\n", (index, stopped)
            if stopped["status"] == "ok":
                continue
            assert stopped["status"] == "timeout", (index, stopped)
            # At the cell's lines, or the `TimeoutError` line alone (stopped before its code began,
            # or as it ended).
            traceback = stopped["error"]["traceback"]
            assert traceback.startswith(('Traceback (most recent call last):\n  File "<cell-',
                                         "TimeoutError: execution exceeded the ")), (index, traceback)
            for machinery in ("<pykernel/", "base_events.py", "/events.py", "_weakrefset.py"):
                assert machinery not in traceback, (index, traceback)
            after = raw.result("code.run", {"code": "await asyncio.sleep(0)\nprint('after')"}, timeout=30)
            assert after["status"] == "ok" and after["stdout"] == "after\n", (index, after)
        assert raw.result("code.run", {"code": "print(count)"}, timeout=30)["stdout"] == f"{shown}\n"
    finally:
        raw.kill()


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_stop_of_an_await_cell_waiting_for_input_ends_it(pykernel_bin, isolation):
    """A cell with top-level `await` that waits in `input()`: the stop landed in the runtime's
    input function, was taken for the loop's machinery and left to a loop that could not run
    while the input waited; the wait was asked again (an `input_request` per repeat), the run was
    answered after the grace period ("did not stop") and the interpreter stayed occupied (a
    process context's worker was killed). It is raised where the cell waits, as in a cell without
    `await`."""
    from pykernel_raw import RawServer

    raw = RawServer(pykernel_bin, ["--isolation", isolation, "--pool-size", "1"])
    try:
        raw.result("code.run", {"code": "import asyncio\nkept = 'yes'"}, timeout=30)
        code = "await asyncio.sleep(0)\nx = input('q? ')"
        started = time.monotonic()
        timed_out = raw.result("code.run", {"code": code, "allow_stdin": True, "timeout": 0.5}, timeout=30)
        assert timed_out["status"] == "timeout" and time.monotonic() - started < 1.8, timed_out
        assert timed_out["error"]["traceback"].endswith(
            "    x = input('q? ')\n        ^^^^^^^^^^^^\nTimeoutError: execution exceeded the 0.5 s timeout\n"), timed_out
        run = raw.request("code.run", {"code": code, "allow_stdin": True})
        raw.wait_for(lambda m: m.get("method") == "code.input_request", timeout=30)
        raw.request("code.interrupt", {"context": "default"})
        interrupted = raw.response(run, timeout=30)["result"]
        assert interrupted["status"] == "interrupted", interrupted
        assert interrupted["error"]["traceback"].endswith("KeyboardInterrupt\n")
        assert "did not stop" not in interrupted["error"]["traceback"]
        assert raw.result("code.run", {"code": "print(kept)"}, timeout=30)["stdout"] == "yes\n"
    finally:
        raw.kill()


@pytest.mark.parametrize("callback", ["time.sleep, 30", "subprocess.run, ['sleep', '30']"])
def test_a_timeout_while_a_loop_callback_blocks_ends_the_run(pykernel_bin, callback):
    """A callback of the loop that blocks in a C function or the library's code
    (`loop.call_soon(time.sleep, 30)`): its innermost frame of Python's own is asyncio's
    `Handle._run`, and the stop was left to the loop that the callback blocks; the run was
    answered after the grace period and the interpreter stayed occupied. A stop there is raised
    in the callback (asyncio reports it as a callback's exception, as before) and the cell ends."""
    from pykernel_raw import RawServer

    raw = RawServer(pykernel_bin)
    try:
        code = f"import asyncio, time, subprocess\nasyncio.get_running_loop().call_soon({callback})\nawait asyncio.sleep(0.1)"
        started = time.monotonic()
        answer = raw.result("code.run", {"code": code, "timeout": 0.5}, timeout=60)
        assert answer["status"] == "timeout" and time.monotonic() - started < 1.8, answer
        assert "did not stop" not in answer["error"]["traceback"]
        assert raw.result("code.run", {"code": "1 + 1"}, timeout=30)["results"][0]["data"]["text/plain"] == "2"
    finally:
        raw.kill()
