"""The Python client against the real ``pykernel serve``: the product docs' examples, timeouts,
contexts, errors, streaming, concurrency and shutdown (see docs/protocol.md)."""

import os
import select
import signal
import subprocess
import threading
import time

import pytest

from background_calls import joined, run_in_thread
from pykernel import (
    Context,
    ContextNotFoundError,
    DefaultContextUndeletableError,
    ExecutionError,
    ExecutionResult,
    InvalidParamsError,
    MethodNotFoundError,
    OutputMessage,
    PyKernel,
    PyKernelConnectionError,
    PyKernelError,
    PyKernelNotFoundError,
    PyKernelTimeoutError,
)


# ---------------------------------------------------------------- product docs' examples


def test_simple_execution(kernel):
    result = kernel.run_code('print("Hello from Python!")\nx = 10\ny = 20\nprint(f"Sum: {x + y}")\n')
    assert isinstance(result, ExecutionResult)
    assert result.stdout == "Hello from Python!\nSum: 30\n"
    assert result.stderr == ""
    assert result.error is None
    assert result.status == "ok"
    assert result.execution_count == 1
    assert result.stdout_truncated is False and result.stderr_truncated is False
    assert result.stdout_omitted_bytes == 0 and result.stderr_omitted_bytes == 0
    assert 0 <= result.duration < 5


def test_default_context_keeps_state_across_runs(kernel):
    first = kernel.run_code("counter = 1\nprint(f'Initialized counter = {counter}')")
    assert first.stdout == "Initialized counter = 1\n"
    second = kernel.run_code("counter += 1\nprint(f'Counter after increment = {counter}')")
    assert second.stdout == "Counter after increment = 2\n"
    assert second.execution_count == first.execution_count + 1
    # Naming the default context explicitly is the same context.
    third = kernel.run_code("print(counter)", context="default")
    assert third.stdout == "2\n"


def test_isolated_context_is_invisible_to_the_default_context(kernel):
    ctx = kernel.create_context()
    try:
        result = kernel.run_code(
            "value = 'stored in isolated context'\nprint(f'Isolated value: {value}')", context=ctx)
        assert result.stdout == "Isolated value: stored in isolated context\n"
        result2 = kernel.run_code("print(f'Value still available: {value}')", context=ctx)
        assert result2.stdout == "Value still available: stored in isolated context\n"

        errors = []
        result3 = kernel.run_code("print(value)", on_error=errors.append)
        assert result3.status == "error"
        assert result3.error == ExecutionError(
            name="NameError", value="name 'value' is not defined", traceback=result3.error.traceback)
        assert "NameError: name 'value' is not defined" in result3.error.traceback
        assert errors == [result3.error]
    finally:
        kernel.delete_context(ctx)


def test_context_with_working_directory(kernel, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    ctx = kernel.create_context(str(project))
    try:
        assert isinstance(ctx, Context)
        assert ctx.language == "python"
        assert ctx.cwd == os.path.realpath(project) or ctx.cwd == str(project)
        result = kernel.run_code("import os\nprint(f'Working directory: {os.getcwd()}')", context=ctx)
        assert result.stdout == f"Working directory: {ctx.cwd}\n"
        # A pathlib.Path is accepted too, and the default context keeps the server's cwd.
        other = kernel.create_context(project)
        assert other.cwd == ctx.cwd
        kernel.delete_context(other)
        assert kernel.run_code("import os; print(os.getcwd())").stdout != f"{ctx.cwd}\n"
    finally:
        kernel.delete_context(ctx)


def test_list_contexts_includes_default(kernel):
    contexts = kernel.list_contexts()
    assert contexts[0].id == "default"
    assert all(isinstance(c, Context) and c.language == "python" and c.cwd for c in contexts)
    ctx = kernel.create_context()
    assert ctx.id in [c.id for c in kernel.list_contexts()]  # its state may have changed (a process context starting)
    kernel.delete_context(ctx.id)  # an id string works as well as a Context
    assert ctx.id not in [c.id for c in kernel.list_contexts()]


def test_per_run_envs(kernel):
    code = ("import os\nprint(f\"API Key: {os.environ.get('API_KEY')}\")\n"
            "print(f\"Debug Mode: {os.environ.get('DEBUG')}\")\n")
    result = kernel.run_code(code, envs={"API_KEY": "secret-key-123", "DEBUG": "true"})
    assert result.stdout == "API Key: secret-key-123\nDebug Mode: true\n"
    # Only for that run.
    assert kernel.run_code(code).stdout == "API Key: None\nDebug Mode: None\n"
    # Subprocesses see them too.
    result = kernel.run_code("import subprocess; subprocess.run(['sh', '-c', 'echo $API_KEY'])",
                             envs={"API_KEY": "from-env"})
    assert result.stdout == "from-env\n"


def test_division_by_zero_error_record(kernel):
    seen = []
    result = kernel.run_code("x = 10\ny = 0\nresult = x / y  # Division by zero\n", on_error=seen.append)
    assert result.status == "error"
    assert result.error.name == "ZeroDivisionError"
    assert result.error.value == "division by zero"
    assert result.error.traceback.startswith("Traceback (most recent call last):\n")
    assert 'File "<cell-1>", line 3, in <module>' in result.error.traceback
    assert "result = x / y  # Division by zero" in result.error.traceback
    assert result.error.traceback.endswith("ZeroDivisionError: division by zero\n")
    assert seen == [result.error]
    # The context survives an exception.
    assert kernel.run_code("print(x)").stdout == "10\n"


def test_streaming_callbacks_arrive_before_the_run_ends(kernel):
    chunks = []
    start = time.monotonic()

    def handle_stdout(message):
        assert isinstance(message, OutputMessage)
        chunks.append((time.monotonic() - start, message))

    code = "import time\nfor i in range(5):\n    print(f'Count: {i}')\n    time.sleep(0.3)\n"
    result = kernel.run_code(code, on_stdout=handle_stdout, timeout=10)
    returned = time.monotonic() - start
    assert result.stdout == "".join(f"Count: {i}\n" for i in range(5))
    assert "".join(m.output for _, m in chunks) == result.stdout
    assert all(m.stream == "stdout" for _, m in chunks)
    first_at = chunks[0][0]
    assert chunks[0][1].output.startswith("Count: 0")
    assert first_at < returned - 0.9, f"first chunk at {first_at:.3f} s, run_code returned at {returned:.3f} s"
    assert len(chunks) >= 3, "output should stream in several chunks, not all at the end"


def test_stderr_callback_and_stream_names(kernel):
    out, err = [], []
    result = kernel.run_code(
        "import sys\nprint('to out')\nsys.stderr.write('to err\\n')\n",
        on_stdout=out.append, on_stderr=err.append)
    assert result.stdout == "to out\n" and result.stderr == "to err\n"
    assert "".join(m.output for m in out) == "to out\n"
    assert "".join(m.output for m in err) == "to err\n"
    assert {m.stream for m in out} == {"stdout"} and {m.stream for m in err} == {"stderr"}
    assert err[0].text == err[0].output


def test_timeout_raises_and_keeps_output_and_state(kernel):
    out, errors = [], []
    code = "import time\nn = 0\nprint('Starting...', flush=True)\nwhile True:\n    n += 1\n    time.sleep(0.01)\n"
    started = time.monotonic()
    with pytest.raises(PyKernelTimeoutError) as caught:
        kernel.run_code(code, timeout=1, on_stdout=out.append, on_error=errors.append)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.5, elapsed
    result = caught.value.result
    assert isinstance(caught.value, PyKernelError) and isinstance(caught.value, TimeoutError)
    assert result.status == "timeout"
    assert result.stdout == "Starting...\n"
    assert "".join(m.output for m in out) == "Starting...\n"
    assert result.error.name == "TimeoutError"
    assert result.error.value == "execution exceeded the 1 s timeout"
    assert "time.sleep(0.01)" in result.error.traceback or "n += 1" in result.error.traceback
    assert errors == [result.error]
    # The context keeps what the run did before it was stopped.
    assert kernel.run_code("print(n > 10)").stdout == "True\n"


def test_fractional_timeout_and_zero_means_none(kernel):
    with pytest.raises(PyKernelTimeoutError) as caught:
        kernel.run_code("import time; time.sleep(5)", timeout=0.3)
    assert caught.value.result.error.value == "execution exceeded the 0.3 s timeout"
    assert kernel.run_code("import time; time.sleep(0.2); print('done')", timeout=0).stdout == "done\n"


def test_max_output_bytes_keeps_head_and_tail_of_the_result_not_the_stream(kernel):
    out = []
    result = kernel.run_code("print('a' * 50 + 'b' * 50)", max_output_bytes=10, on_stdout=out.append)
    assert result.stdout == "a" * 5 + "b" * 4 + "\n"
    assert result.stdout_truncated is True and result.stdout_omitted_bytes == 91
    assert result.stderr_truncated is False and result.stderr_omitted_bytes == 0
    assert result.stdout_head_bytes == 5 and result.stderr_head_bytes == 0
    assert "".join(m.output for m in out) == "a" * 50 + "b" * 50 + "\n"


def test_deleted_context_raises_context_not_found(kernel):
    ctx = kernel.create_context()
    kernel.delete_context(ctx)
    with pytest.raises(ContextNotFoundError) as caught:
        kernel.run_code("print(1)", context=ctx)
    assert caught.value.code == -32001
    assert caught.value.reason == "context_not_found"
    assert ctx.id in caught.value.message
    with pytest.raises(ContextNotFoundError):
        kernel.delete_context(ctx)
    with pytest.raises(ContextNotFoundError):
        kernel.interrupt(ctx)


def test_hooks_a_deleted_context_set_are_put_back(kernel):
    """`sys` and `threading` are shared by namespace contexts: hooks a context set to its own
    functions outlived it, and with its globals cleared every later error of every context
    printed `Error in sys.excepthook: ... NameError: name 'sys' is not defined`."""
    other = kernel.create_context()
    setup = ("import sys, threading\n"
             "def hook(kind, value, tb):\n    print('hook', kind.__name__, file=sys.stderr)\n"
             "class Hooks:\n    def thread(self, args):\n        print('thread hook', args.exc_type.__name__, file=sys.stderr)\n"
             "sys.excepthook = hook\nthreading.excepthook = Hooks().thread\n"
             "sys.unraisablehook = lambda u: print('unraisable', file=sys.stderr)")
    assert kernel.run_code(setup, context=other).status == "ok"
    kept = kernel.run_code("import sys\nkeep = lambda *a: print('kept hook', file=sys.stderr)\nsys.breakpointhook = keep")
    assert kept.status == "ok"
    kernel.delete_context(other)
    result = kernel.run_code("import threading\nt = threading.Thread(target=lambda: 1/0, name='T')\nt.start(); t.join()\n"
                             "class D:\n    def __del__(self):\n        raise KeyError('in del')\nD()\n"
                             "breakpoint()\nraise ValueError('x')")
    assert result.error.name == "ValueError" and result.error.traceback.endswith("ValueError: x\n")
    assert result.stderr.startswith("Exception in thread T:\nTraceback (most recent call last):\n")
    assert "Exception ignored in: <function D.__del__" in result.stderr
    # A hook of a context still alive stays.
    assert result.stderr.endswith("kept hook\n")
    assert "hook" not in result.stderr.replace("kept hook", "") and "unraisable" not in result.stderr
    assert kernel.run_code("import sys\nsys.breakpointhook = sys.__breakpointhook__").status == "ok"


# Code of a context that objects of the shared `sys`, `threading` and `warnings` still call once
# it is deleted: each broke every later run of every context (`NameError: name 'SEEN' is not
# defined`) once the context's globals were cleared.
_DELETED_CONTEXT_HOOKS = {
    "audit hook": "import sys\nCOUNT = [0]\ndef hook(event, args):\n    COUNT[0] += 1\nsys.addaudithook(hook)",
    "audit hook object": "import sys\nclass Hook:\n    def __call__(self, event, args):\n        SEEN.append(event)\n"
                         "SEEN = []\nsys.addaudithook(Hook())",
    "meta_path finder": "import sys\nSEEN = []\nclass Finder:\n    def find_spec(self, name, path, target=None):\n"
                        "        SEEN.append(name)\nsys.meta_path.insert(0, Finder())",
    "meta_path class": "import sys\nSEEN = []\nclass Finder:\n    @classmethod\n    def find_spec(cls, name, path, target=None):\n"
                       "        SEEN.append(name)\nsys.meta_path.insert(0, Finder)",
    "path hook and its finders": "import sys\nSEEN = []\nfile_finders = sys.path_hooks[-1]\nclass PathFinder:\n"
                                 "    def __init__(self, path):\n        self.inner = file_finders(path)\n"
                                 "    def find_spec(self, name, target=None):\n        SEEN.append(name)\n"
                                 "        return self.inner.find_spec(name, target)\n"
                                 "sys.path_hooks.insert(0, PathFinder)\nsys.path_importer_cache.clear()\nimport csv",
    "showwarning": "import sys, warnings\nLOG = []\ndef routed(message, category, filename, lineno, file=None, line=None):\n"
                   "    LOG.append(message)\n    print('routed', message, file=sys.stderr)\nwarnings.showwarning = routed",
    "formatwarning": "import warnings\nPREFIX = 'w: '\ndef short(message, category, filename, lineno, line=None):\n"
                     "    return PREFIX + str(message) + '\\n'\nwarnings.formatwarning = short",
    "excepthook object": "import sys\nclass Hook:\n    def __call__(self, kind, value, tb):\n        print(PREFIX, kind, file=sys.stderr)\n"
                         "PREFIX = 'hook'\nsys.excepthook = Hook()",
    "excepthook partial": "import functools, sys\ndef hook(tag, kind, value, tb):\n    print(tag, kind, file=sys.stderr)\n"
                          "sys.excepthook = functools.partial(hook, 'hook')",
    "thread excepthook partial": "import functools, sys, threading\ndef hook(tag, args):\n    print(tag, file=sys.stderr)\n"
                                 "threading.excepthook = functools.partial(hook, 'hook')",
    "unraisablehook bound method of a partial": "import functools, sys\nclass Hooks:\n    def unraisable(self, u):\n"
                                                "        print('unraisable', file=sys.stderr)\n"
                                                "sys.unraisablehook = functools.partial(Hooks().unraisable)",
}


def _probe_runs(kernel, context, module):
    """What a fresh context's print, first import of ``module``, warning and errors (of the code,
    of a thread, of a finalizer) give, addresses left out."""
    import re

    probes = ["print('x')", f"import {module}\nprint('imported', {module}.__name__ == {module!r})",
              "import warnings\nwarnings.warn('w')",
              "import threading\nt = threading.Thread(target=lambda: 1/0, name='T')\nt.start(); t.join()\n"
              "class D:\n    def __del__(self):\n        raise KeyError('in del')\nD()\nraise ValueError('v')"]
    seen = []
    for code in probes:
        result = kernel.run_code(code, context=context)
        error = result.error and (result.error.name, result.error.value, result.error.traceback)
        seen.append((result.status, result.stdout.replace(module, "M"), re.sub(r"0x[0-9a-f]+", "0x", result.stderr), error))
    return seen


@pytest.mark.parametrize("case", sorted(_DELETED_CONTEXT_HOOKS))
def test_code_of_a_deleted_context_shared_state_still_calls_keeps_working(kernel, case):
    """Runs after the deletion, in a fresh context, give what they gave before the context set
    its hook (the python3 output the other tests check): its hooks are put back, its finders go,
    and an audit hook (CPython cannot remove one) keeps the context's globals alive."""
    before = _probe_runs(kernel, kernel.create_context(), "calendar")
    assert [run[0] for run in before] == ["ok", "ok", "ok", "error"]
    hostile = kernel.create_context()
    assert kernel.run_code(_DELETED_CONTEXT_HOOKS[case], context=hostile).status == "ok"
    kernel.delete_context(hostile)
    assert _probe_runs(kernel, kernel.create_context(), "difflib") == before
    assert _probe_runs(kernel, None, "fractions") == before


def test_default_context_cannot_be_deleted(kernel):
    with pytest.raises(DefaultContextUndeletableError) as caught:
        kernel.delete_context("default")
    assert caught.value.code == -32002
    assert caught.value.reason == "default_context_undeletable"


def test_invalid_params_raise_invalid_params_error(kernel, tmp_path):
    with pytest.raises(InvalidParamsError) as caught:
        kernel.run_code("print(1)", timeout=-1)
    assert caught.value.code == -32602
    assert (caught.value.reason, caught.value.field) == ("invalid_argument", "timeout")
    with pytest.raises(InvalidParamsError) as caught:
        kernel.create_context(str(tmp_path / "missing"))
    assert (caught.value.reason, caught.value.field) == ("invalid_cwd", "cwd")
    with pytest.raises(InvalidParamsError) as caught:
        kernel.run_code("print(1)", envs={"A": 1})
    assert (caught.value.reason, caught.value.field) == ("invalid_argument", "env")
    with pytest.raises(InvalidParamsError) as caught:
        kernel.call("code.run", {"code": "print(1)", "timeout_ms": 5})
    assert (caught.value.reason, caught.value.field) == ("unknown_parameter", "timeout_ms")


@pytest.mark.parametrize("error, expected", [
    ({"code": -32007, "message": "m", "data": {"reason": "run_queue_full"}}, "RunQueueFullError"),
    ({"code": -32005, "message": "m", "data": {"reason": "shutting_down"}}, "ShuttingDownError"),
    ({"code": -32010, "message": "m", "data": {"reason": "session_not_found"}}, "SessionNotFoundError"),
    ({"code": -32014, "message": "m", "data": {"reason": "runtime_not_found"}}, "RuntimeNotFoundError"),
    ({"code": -32020, "message": "m", "data": {"reason": "processes_running"}}, "ProcessesRunningError"),
    ({"code": -32017, "message": "m", "data": {"reason": "pty_not_found"}}, "PtyNotFoundError"),
    ({"code": -32018, "message": "m", "data": {"reason": "pty_exists"}}, "PtyExistsError"),
    ({"code": -32019, "message": "m", "data": {"reason": "pty_exited"}}, "PtyExitedError"),
    ({"code": -32602, "message": "m", "data": {"reason": "invalid_cwd", "field": "cwd"}}, "InvalidParamsError"),
    ({"code": -32099, "message": "m", "data": {"reason": "context_deleted"}}, "ContextDeletedError"),
    ({"code": -32099, "message": "m", "data": {"reason": "something_new"}}, "PyKernelError"),
    ({"code": -32601, "message": "m", "data": {"method": "x"}}, "MethodNotFoundError"),
])
def test_errors_map_by_reason_then_code(error, expected):
    from pykernel.errors import error_from_response
    raised = error_from_response(error)
    assert type(raised).__name__ == expected
    assert raised.code == error["code"] and raised.data == error["data"]


def test_kernel_info_and_generic_call(kernel):
    info = kernel.kernel_info()
    assert info.name == "pykernel"
    assert info.protocol_version == 1
    assert info.python_version.startswith("3.")
    assert {"kernel.info", "context.create", "context.list", "context.delete", "code.run",
            "code.interrupt", "shutdown"} <= set(info.methods)
    assert kernel.call("context.list")["contexts"][0]["id"] == "default"
    notes = []
    result = kernel.call("code.run", {"code": "print('via call')"}, on_notification=lambda m, p: notes.append((m, p)))
    assert result["stdout"] == "via call\n"
    assert notes and notes[0][0] == "code.output" and notes[0][1]["text"] == "via call\n"
    with pytest.raises(MethodNotFoundError) as caught:
        kernel.call("no.such.method")
    assert caught.value.code == -32601


def test_kernel_info_and_contexts_carry_what_the_server_sends(kernel):
    """`KernelInfo.isolation` (default kind, pool, fork server) and a process context's
    `memory_limit_mb`/`cpu_time_limit_s` (from create, list and restart): the client dropped them."""
    from pykernel import ForkServer, IsolationInfo, WorkerPool

    wire = kernel.call("kernel.info")["isolation"]
    isolation = kernel.kernel_info().isolation
    assert isinstance(isolation, IsolationInfo) and isinstance(isolation.pool, WorkerPool)
    assert (isolation.default, isolation.pool.size, isolation.pool.worker_start) == \
        (wire["default"], wire["pool"]["size"], wire["pool"]["worker_start"])
    assert isolation.fork_server is None or isinstance(isolation.fork_server, ForkServer)
    limited = kernel.create_context(isolation="process", memory_limit_mb=300, cpu_time_limit_s=5)
    try:
        assert (limited.memory_limit_mb, limited.cpu_time_limit_s) == (300, 5.0)
        listed = next(context for context in kernel.list_contexts() if context.id == limited.id)
        assert (listed.memory_limit_mb, listed.cpu_time_limit_s) == (300, 5.0)
        kernel.run_code("1", context=limited)  # bound to its worker: restartable
        restarted = kernel.restart_context(limited)
        assert (restarted.memory_limit_mb, restarted.cpu_time_limit_s) == (300, 5.0)
        fork_server = kernel.kernel_info().isolation.fork_server
        assert fork_server is None or (fork_server.pid > 0 and fork_server.restarts >= 0)
    finally:
        kernel.delete_context(limited)
    plain = kernel.create_context(isolation="namespace")
    assert (plain.memory_limit_mb, plain.cpu_time_limit_s) == (None, None)
    kernel.delete_context(plain)


def test_callback_exception_is_reraised_and_the_client_still_works(kernel):
    def broken(message):
        raise ValueError("callback failed")

    with pytest.raises(ValueError, match="callback failed"):
        kernel.run_code("print('a')\nprint('b')\nafter = 1", on_stdout=broken)
    assert kernel.run_code("print(after)").stdout == "1\n"


def test_callbacks_cannot_call_the_client(kernel):
    problems = []

    def reentrant(message):
        try:
            kernel.list_contexts()
        except RuntimeError as error:
            problems.append(str(error))

    kernel.run_code("print('hi')", on_stdout=reentrant)
    assert problems and "reader thread" in problems[0]


# ---------------------------------------------------------------- concurrency


def test_context_list_answers_at_once_while_a_run_is_in_progress(kernel):
    started = threading.Event()
    thread, outcome = run_in_thread(
        kernel.run_code, "import time\nprint('started', flush=True)\ntime.sleep(2)\nprint('done')",
        on_stdout=lambda m: started.set())
    assert started.wait(10), "the run did not start"
    timings = {}
    for name, call in [("context.list", kernel.list_contexts), ("kernel.info", kernel.kernel_info),
                       ("context.create", kernel.create_context)]:
        begin = time.monotonic()
        value = call()
        timings[name] = time.monotonic() - begin
        if name == "context.create":
            begin = time.monotonic()
            assert kernel.interrupt(value) is False  # nothing runs there
            kernel.delete_context(value)
            timings["interrupt+delete"] = time.monotonic() - begin
    assert all(t < 0.1 for t in timings.values()), timings
    assert thread.is_alive(), "the 2 s run should still be in progress"
    result = joined(thread, outcome)
    assert result.stdout == "started\ndone\n"


def test_several_threads_run_code_in_different_contexts(kernel):
    workers = 4
    runs = 5
    barrier = threading.Barrier(workers)

    def work(index):
        ctx = kernel.create_context()
        token = f"worker-{index}"
        seen = []
        barrier.wait()
        results = []
        for run in range(runs):
            results.append(kernel.run_code(
                f"import time\ntry:\n    total += 1\nexcept NameError:\n    total = 1\n"
                f"time.sleep(0.02)\nprint('{token}', total)\n",
                context=ctx, on_stdout=lambda m: seen.append(m.output)))
        kernel.delete_context(ctx)
        return token, results, seen

    threads = [run_in_thread(work, i) for i in range(workers)]
    for thread, outcome in threads:
        token, results, seen = joined(thread, outcome, timeout=60)
        assert [r.stdout for r in results] == [f"{token} {n}\n" for n in range(1, runs + 1)]
        assert [r.execution_count for r in results] == list(range(1, runs + 1))
        assert "".join(seen) == "".join(r.stdout for r in results)  # no other worker's output


def test_interrupt_from_another_thread(kernel):
    ctx = kernel.create_context()
    started = threading.Event()
    thread, outcome = run_in_thread(
        kernel.run_code, "i = 0\nprint('started', flush=True)\nwhile True:\n    i += 1\n",
        context=ctx, on_stdout=lambda m: started.set())
    assert started.wait(10)
    time.sleep(0.1)
    assert kernel.interrupt(ctx) is True
    result = joined(thread, outcome, timeout=10)
    assert result.status == "interrupted"
    assert result.error.name == "KeyboardInterrupt"
    assert result.stdout == "started\n"
    assert kernel.run_code("print(i > 0)", context=ctx).stdout == "True\n"
    assert kernel.interrupt(ctx) is False


def test_delete_context_interrupts_its_run(kernel):
    ctx = kernel.create_context()
    started = threading.Event()
    thread, outcome = run_in_thread(
        kernel.run_code, "import time\nprint('started', flush=True)\ntime.sleep(30)",
        context=ctx, on_stdout=lambda m: started.set())
    assert started.wait(10)
    kernel.delete_context(ctx)
    result = joined(thread, outcome, timeout=10)
    assert result.status == "interrupted"
    assert result.error.name == "KeyboardInterrupt"


# ---------------------------------------------------------------- lifecycle


def test_close_interrupts_a_run_and_exits_zero(pykernel_bin):
    client = PyKernel(pykernel_bin)
    started = threading.Event()
    thread, outcome = run_in_thread(
        client.run_code, "import time\nprint('started', flush=True)\ntime.sleep(30)",
        on_stdout=lambda m: started.set())
    assert started.wait(10)
    begin = time.monotonic()
    client.close()
    assert time.monotonic() - begin < 3
    assert client.returncode == 0
    result = joined(thread, outcome, timeout=10)
    assert result.status == "interrupted"
    assert client.closed
    with pytest.raises(PyKernelConnectionError):
        client.run_code("print(1)")
    client.close()  # idempotent


def test_close_kills_a_server_that_does_not_exit_in_time(pykernel_bin):
    """close(timeout) returns within about `timeout` even when the run in flight swallows the
    interrupt (the server then does not exit on its own: see test_protocol's shutdown tests)."""
    client = PyKernel(pykernel_bin)
    started = threading.Event()
    code = ("import time\nwhile True:\n    try:\n        print('started', flush=True)\n        time.sleep(30)\n"
            "    except KeyboardInterrupt:\n        pass\n")
    thread, outcome = run_in_thread(client.run_code, code, on_stdout=lambda m: started.set())
    assert started.wait(10)
    begin = time.monotonic()
    client.close(timeout=1.5)
    assert time.monotonic() - begin < 3
    assert client.returncode is not None
    thread.join(10)
    assert not thread.is_alive()
    if "error" in outcome:
        assert isinstance(outcome["error"], PyKernelConnectionError)
    else:
        assert outcome["value"].status in ("interrupted", "timeout")


def test_context_manager_shuts_the_server_down(pykernel_bin):
    with PyKernel(pykernel_bin) as client:
        assert client.run_code("print(1)").stdout == "1\n"
        pid = client.pid
    assert client.returncode == 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_server_exit_fails_pending_calls(pykernel_bin):
    client = PyKernel(pykernel_bin)
    started = threading.Event()
    thread, outcome = run_in_thread(
        client.run_code, "import time\nprint('started', flush=True)\ntime.sleep(30)",
        on_stdout=lambda m: started.set())
    assert started.wait(10)
    client._process.kill()
    with pytest.raises(PyKernelConnectionError, match="exited"):
        joined(thread, outcome, timeout=10)
    with pytest.raises(PyKernelConnectionError):
        client.list_contexts()
    client.close()


def test_binary_resolution(pykernel_bin, monkeypatch, tmp_path):
    with pytest.raises(PyKernelNotFoundError, match="does not exist"):
        PyKernel(str(tmp_path / "no-such-pykernel"))
    monkeypatch.delenv("PYKERNEL_BIN", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PyKernelNotFoundError, match="PYKERNEL_BIN"):
        PyKernel()
    assert issubclass(PyKernelNotFoundError, FileNotFoundError)
    # PYKERNEL_BIN, then PATH.
    monkeypatch.setenv("PYKERNEL_BIN", pykernel_bin)
    with PyKernel() as client:
        assert client.binary == pykernel_bin
    monkeypatch.delenv("PYKERNEL_BIN")
    os.symlink(pykernel_bin, tmp_path / "pykernel")
    with PyKernel() as client:
        assert client.binary == str(tmp_path / "pykernel")


def test_server_cwd_args_and_env(pykernel_bin, tmp_path):
    env = dict(os.environ, PYKERNEL_CLIENT_TEST="inherited")
    with PyKernel(pykernel_bin, cwd=str(tmp_path), env=env, args=("--log-level", "error")) as client:
        assert client.list_contexts()[0].cwd == os.path.realpath(tmp_path)
        result = client.run_code("import os; print(os.environ['PYKERNEL_CLIENT_TEST'])")
        assert result.stdout == "inherited\n"


def test_package_metadata():
    """pyproject.toml: a setuptools package `pykernel-client` holding the `pykernel` package only,
    Python >= 3.9, no dependencies (`pip install ./python` installs it)."""
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    python_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(python_dir, "pyproject.toml"), "rb") as file:
        project = tomllib.load(file)
    assert project["build-system"]["build-backend"] == "setuptools.build_meta"
    assert project["project"]["name"] == "pykernel-client"
    assert project["project"]["requires-python"] == ">=3.9"
    assert project["project"].get("dependencies", []) == []
    assert project["tool"]["setuptools"]["packages"] == ["pykernel"]


def test_client_imports_on_python_3_9():
    """The client's modules compile and import under the oldest supported Python, when present."""
    python39 = os.path.expanduser("~/.pyenv/versions/3.9.18/bin/python3.9")
    candidates = [p for p in ("/usr/bin/python3.9", python39) if os.path.exists(p)]
    if not candidates:
        pytest.skip("no Python 3.9 interpreter on this machine")
    python_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    completed = subprocess.run(
        [candidates[0], "-c", "import pykernel; print(pykernel.PyKernel.run_code.__name__)"],
        cwd=python_dir, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


# ---------------------------------------------------------------- found by a black-box sweep of the client


def test_a_number_json_cannot_carry_is_refused_at_once(kernel):
    # It was sent as `Infinity`; the server's parse error had no id to answer: the call hung.
    import math

    for call in (lambda: kernel.run_code("1", timeout=math.inf), lambda: kernel.exec("true", timeout=float("nan"))):
        with pytest.raises(InvalidParamsError, match="not a finite number") as refused:
            call()
        # The data the server gives an invalid param (`.field` and `.reason` were None: data was {}).
        assert (refused.value.reason, refused.value.field) == ("invalid_argument", "timeout")
        with pytest.raises(InvalidParamsError) as by_server:
            kernel.run_code("1", timeout=-1)
        assert refused.value.data == by_server.value.data == {"reason": "invalid_argument", "field": "timeout"}
    with pytest.raises(InvalidParamsError) as nested:
        kernel.call("code.run", {"code": "1", "env": {"A": [1.0, {"b": -math.inf}]}})
    assert nested.value.data == {"reason": "invalid_argument", "field": "env"}
    assert kernel.run_code("print('still')").stdout == "still\n"


def test_a_value_json_cannot_carry_is_refused_naming_the_param_and_its_type(kernel):
    # run_code(b"x") raised json's plain TypeError ("Object of type bytes is not JSON serializable").
    for call, field in ((lambda: kernel.run_code(b"print(1)"), "code"), (lambda: kernel.exec(b"true"), "command"),
                        (lambda: kernel.run_code("1", envs={"A": {1, 2}}), "env")):
        with pytest.raises(InvalidParamsError) as refused:
            call()
        assert refused.value.data == {"reason": "invalid_argument", "field": field}
        assert f"params.{field} cannot be sent" in refused.value.message
    with pytest.raises(InvalidParamsError, match="type bytes"):
        kernel.run_code(b"print(1)")
    assert kernel.run_code("print('still')").stdout == "still\n"


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_timeout_is_named_as_given(kernel, isolation):
    # The code's TimeoutError wrote it with 6 significant digits: 0.0001234567 read "0.000123457".
    context = kernel.create_context(isolation=isolation)
    for timeout, named in ((0.0001234567, "0.0001234567"), (0.25, "0.25"), (1e-30, "1e-18")):
        with pytest.raises(PyKernelTimeoutError) as stopped:
            kernel.run_code("import time\ntime.sleep(5)", context=context, timeout=timeout)
        assert stopped.value.result.error.value == f"execution exceeded the {named} s timeout"
    kernel.delete_context(context)


def test_an_empty_context_id_is_not_the_default_context(kernel):
    with pytest.raises(ContextNotFoundError):
        kernel.interrupt("")


def test_a_handler_that_exits_or_a_line_too_deep_to_parse_leaves_the_reader_reading(kernel):
    """A notification handler raising SystemExit ended the reader thread (the client then took
    the live server for exited); so did a response too deeply nested for this Python's parser,
    which now fails that call alone."""
    import sys

    kernel.on_session_exited(lambda event: sys.exit(0))
    kernel.create_session("bye")
    kernel.execute_session_command("bye", "true", run_async=True)
    time.sleep(0.3)
    assert kernel.run_code("print('reading')").stdout == "reading\n"
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(300)
    try:
        with pytest.raises(PyKernelError, match="could not be parsed here"):
            kernel.run_code("class Deep:\n    def _repr_json_(self):\n        value = []\n        for _ in range(400):\n"
                            "            value = [value]\n        return value\nDeep()")
    finally:
        sys.setrecursionlimit(limit)
    assert not kernel.closed and kernel.run_code("print('reading')").stdout == "reading\n"


def test_a_client_dropped_without_close_stops_its_server(pykernel_bin):
    # The reader thread held the client: its finalizer ran only at the interpreter's exit.
    import gc

    client = PyKernel(pykernel_bin)
    process = client._process
    del client
    gc.collect()
    assert process.wait(10) is not None


def test_var_async_makes_a_session_command_asynchronous(kernel):
    from pykernel import SessionExecuteRequest

    kernel.create_session("alias")
    response = kernel.execute_session_command("alias", SessionExecuteRequest(command="sleep 0.2; echo done", var_async=True))
    assert response.cmd_id and response.exit_code is None


def test_execute_session_command_takes_timeout_third_as_the_product_sdk(kernel):
    """`execute_session_command(session_id, req, timeout)`: the product SDK's third positional
    argument is the timeout; it was `run_async`, so a timeout of 30 silently made the command
    asynchronous (no exit code, no output). `run_async` is keyword-only and must be a bool."""
    from pykernel import SessionExecuteRequest

    kernel.create_session("positional")
    done = kernel.execute_session_command("positional", SessionExecuteRequest(command="echo hi"), 30)
    assert (done.exit_code, done.stdout) == (0, "hi\n")
    slow = kernel.execute_session_command("positional", "sleep 5", 0.3)
    assert slow.exit_code == 124
    with pytest.raises(InvalidParamsError, match="run_async must be a bool, not str") as refused:
        kernel.execute_session_command("positional", "echo hi", run_async="yes")
    assert refused.value.field == "run_async"

    class bool:  # a look-alike named as the builtin (numpy 2's `numpy.bool`): named with its module
        def __bool__(self):
            return True
    with pytest.raises(InvalidParamsError, match=r"run_async must be a bool, not test_client\..*bool \(") as refused:
        kernel.execute_session_command("positional", "echo hi", run_async=bool())


def test_ctrl_c_leaves_another_threads_run_in_the_context_alone(kernel):
    """Ctrl-C while a run waits behind another thread's run in the same context interrupted
    that other run (the interrupt names the context)."""
    import signal

    started = threading.Event()
    thread, outcome = run_in_thread(kernel.run_code, "import time\nprint('a', flush=True)\ntime.sleep(1)\nprint('a done')",
                                    on_stdout=lambda m: started.set())
    assert started.wait(10)
    threading.Timer(0.2, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        kernel.run_code("print('b')")
    assert joined(thread, outcome, timeout=10).stdout == "a\na done\n"


# ---------------------------------------------------------------- found by the client sweep of session 28


def test_ctrl_c_during_a_large_requests_write_leaves_the_stream_whole(kernel, monkeypatch):
    """A KeyboardInterrupt that landed while a 60 MB request was being written left half a line
    on the server's stdin: the next request was glued to it (the server answered -32700 with a
    null id) and its caller waited forever. The line is finished first, then Ctrl-C is raised."""
    import signal

    write = PyKernel._write

    def write_then_ctrl_c(self, line):  # Ctrl-C (SIGALRM raising KeyboardInterrupt) 50 ms into the write
        if len(line) > 1 << 20:
            signal.setitimer(signal.ITIMER_REAL, 0.05)
        return write(self, line)

    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    monkeypatch.setattr(PyKernel, "_write", write_then_ctrl_c)
    try:
        with pytest.raises(KeyboardInterrupt):
            kernel.call("context.list", {"padding": "#" * (60 << 20)})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    thread, outcome = run_in_thread(kernel.list_contexts)
    assert [context.id for context in joined(thread, outcome, timeout=20)] == ["default"]
    assert kernel.run_code("print('whole')").stdout == "whole\n"


def _open_descriptors():
    return len(os.listdir("/proc/self/fd"))


def test_a_closed_client_or_one_that_failed_to_start_leaves_no_pipe_open(pykernel_bin):
    """close() closed the server's stdin but never its stdout (one descriptor per closed client
    while the object lived, and a ResourceWarning when it was freed); a client whose start
    failed left both pipes open."""
    import gc
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        before = _open_descriptors()
        kept = []
        for _ in range(3):
            with PyKernel(pykernel_bin) as client:
                client.run_code("1")
            kept.append(client)
        assert _open_descriptors() == before
        assert all(client._process.stdout.closed and client._process.stdin.closed for client in kept)
        for _ in range(3):
            with pytest.raises(PyKernelConnectionError):
                PyKernel("/bin/true")  # `true serve` exits at once: kernel.info is never answered
        assert _open_descriptors() == before
        del kept, client
        gc.collect()
    assert [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)] == []


def test_a_server_that_died_is_noticed_while_another_process_holds_its_stdout(pykernel_bin):
    """Server death was noticed only as the end of its stdout: with a descendant holding the
    pipe (a libc fork in a namespace context), a SIGKILLed server was never noticed (pending and
    new calls hung for ever, `closed` stayed False). What it wrote before dying is delivered."""
    import signal

    client = PyKernel(pykernel_bin)
    # A writer of the server's stdout besides the server (as a descendant that inherited it).
    holder = os.open(f"/proc/self/fd/{client._process.stdout.fileno()}", os.O_WRONLY)
    try:
        seen, first = [], threading.Event()

        def on_stdout(message):  # the reader is held up while the server writes `second` and dies
            seen.append(message.output)
            if message.output == "first\n":
                first.set()
                time.sleep(2.5)

        thread, outcome = run_in_thread(
            client.run_code, "import time\nprint('first', flush=True)\ntime.sleep(0.2)\nprint('second', flush=True)\n"
            "time.sleep(60)", on_stdout=on_stdout)
        assert first.wait(10)
        time.sleep(1.5)
        os.kill(client.pid, signal.SIGKILL)
        with pytest.raises(PyKernelConnectionError, match="exited"):
            joined(thread, outcome, timeout=15)
        assert seen == ["first\n", "second\n"]
        assert client.closed
        begin = time.monotonic()
        with pytest.raises(PyKernelConnectionError):
            client.list_contexts()
        client.close()
        assert time.monotonic() - begin < 2
        assert client._process.stdout.closed
    finally:
        os.close(holder)


def test_requests_refused_before_sending_are_not_kept_as_abandoned(kernel):
    """A request the client refuses itself (NaN, bytes, a line over 64 MiB) was added to the
    ids whose late response is dropped silently, and stayed there for ever: one entry per call."""
    from pykernel import InvalidRequestError

    for _ in range(20):
        with pytest.raises(InvalidParamsError):
            kernel.run_code("1", timeout=float("nan"))
        with pytest.raises(InvalidParamsError):
            kernel.exec(b"true")
    with pytest.raises(InvalidRequestError):
        kernel.run_code("#" * (65 << 20))
    assert kernel._abandoned == set()
    assert kernel.run_code("print('sent')").stdout == "sent\n"


def test_a_runs_timeout_does_not_count_the_time_it_waits_behind_another_contexts_run(kernel):
    """What run_code's `timeout` doc says: it counts from the run's start (docs/protocol.md), not
    from the call; a run queued behind another namespace context's longer run is not timed out."""
    started = threading.Event()
    other = kernel.create_context(isolation="namespace")
    thread, outcome = run_in_thread(kernel.run_code, "import time\nprint('started', flush=True)\ntime.sleep(1.5)",
                                    context=other, on_stdout=lambda m: started.set())
    assert started.wait(10)
    assert kernel.run_code("print('ran')", timeout=0.5).stdout == "ran\n"
    assert joined(thread, outcome).status == "ok"
    kernel.delete_context(other)


def test_a_forked_child_cannot_use_the_client_nor_shut_its_server_down(pykernel_bin):
    """A child forked after the client started shared its server's pipes: its calls went to the
    parent's server (code run there, ids that could collide with the parent's next request) and
    waited forever for answers only the parent's reader thread read, and its `close()` (a `with`
    block it left) shut the parent's server down."""
    with PyKernel(pykernel_bin) as kernel:
        kernel.run_code("marker = 'parent'")
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report what it saw on the pipe, then leave without Python's clean-up
            outcome = []
            try:
                kernel.run_code("marker = 'child'")
                outcome.append("ran")
            except PyKernelConnectionError as error:
                outcome.append("refused: " + str(error))
            try:
                kernel.notify("code.run", {"code": "marker = 'child notification'"})
                outcome.append("notified")
            except PyKernelConnectionError:
                outcome.append("refused")
            kernel.close()
            os.write(write_end, "\n".join(outcome).encode())
            os._exit(0)
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], 30)
        if not ready:  # the child waits for an answer that never comes
            os.kill(pid, signal.SIGKILL)
        with os.fdopen(read_end) as report:
            outcome = report.read().split("\n")
        assert os.waitpid(pid, 0)[1] == 0, f"the child's call never returned: {outcome}"
        assert outcome[0].startswith("refused: ") and "a fork of process" in outcome[0], outcome
        assert outcome[1] == "refused", outcome
        # The parent's server was left alone: still serving, the context's state untouched.
        assert kernel.run_code("print(marker)").stdout == "parent\n"
    assert kernel.returncode == 0
