"""Top-level ``await`` in cells (as IPython/Jupyter run them) through the real ``pykernel serve``:
values, tasks that outlive their cell, tracebacks, stops, ``async with``/``async for``, a cell
using ``asyncio.run``, and a process context."""

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
    assert result.error.traceback == (
        "Traceback (most recent call last):\n"
        '  File "<cell-1>", line 4, in spin\n'
        "    while True:\n"
        "KeyboardInterrupt\n")
    after = kernel.run_code("await asyncio.sleep(0.001, 'fine')", context=context)
    assert after.status == "ok", after.error
    assert after.text == "'fine'"
