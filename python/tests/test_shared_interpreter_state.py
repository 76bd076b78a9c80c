"""A namespace context that pushes or breaks the interpreter's shared state, against the real
``pykernel serve``: the engine's own work (stopping a run, starting a thread, recording an error,
applying a run's ``env``) does not depend on what the code did to the shared modules and limits.
"""

import pytest

from pykernel import PyKernelTimeoutError

def ok(kernel, code, context):
    result = kernel.run_code(code, context, timeout=30)
    assert result.status == "ok", (result.status, result.stderr, result.error)
    return result


# A run whose code waits at `gap` calls below the recursion limit, for its timeout to land there.
DEEP_WAIT = """
import sys, time
def down(n):
    if n == 0:
        {wait}
    down(n - 1)
down(sys.getrecursionlimit() - {gap})
"""


# From the first gap where the stop signal's handler can be called: closer to the limit CPython
# refuses the call of the handler itself (its RecursionError, as python3's SIGINT handler is
# refused there); time.sleep calls it one level deeper, from inside the sleep.
@pytest.mark.parametrize(("wait", "first_gap"), [("while True: pass", 3), ("time.sleep(5)", 4)])
def test_a_timeout_that_lands_near_the_recursion_limit_is_a_timeout_error(kernel, wait, first_gap):
    stopped = 0
    for gap in range(first_gap, 16):
        code = DEEP_WAIT.format(wait=wait, gap=gap)
        try:
            result = kernel.run_code(code, timeout=0.3)
        except PyKernelTimeoutError as caught:
            result = caught.result
            error = result.error
            assert (error.name, error.value) == ("TimeoutError", "execution exceeded the 0.3 s timeout"), (gap, error)
            assert error.traceback.endswith("TimeoutError: execution exceeded the 0.3 s timeout\n"), (gap, error.traceback)
            stopped += 1
        else:
            # Too deep to reach the wait: the code's own RecursionError, as in python3.
            assert result.status == "error" and result.error.name == "RecursionError", (gap, result.status, result.error)
    assert stopped >= 10
    assert kernel.run_code("print('after')").stdout == "after\n"


# The first thread start of the server, while the code's import state cannot import subprocess.
FIRST_THREAD_START_CANNOT_IMPORT = {
    "subprocess blocked": "sys.modules['subprocess'] = None",
    "empty path": "sys.path.clear()",
}


@pytest.mark.parametrize("breaks", FIRST_THREAD_START_CANNOT_IMPORT.values(), ids=FIRST_THREAD_START_CANNOT_IMPORT.keys())
def test_the_first_thread_start_works_whatever_the_codes_import_state_and_thread_processes_keep_their_context(kernel, breaks):
    a, b, c = kernel.create_context(), kernel.create_context(), kernel.create_context()
    started = kernel.run_code(
        "import sys, threading\nsaved_path, saved_modules = list(sys.path), dict(sys.modules)\n"
        f"{breaks}\n"
        "t = threading.Thread(target=print, args=('thread ran',)); t.start(); t.join()\n"
        "sys.path[:] = saved_path\n"
        "for name in [name for name in sys.modules if name not in saved_modules]:\n    del sys.modules[name]\n"
        "sys.modules.update(saved_modules)",
        a, timeout=30,
    )
    assert (started.status, started.stdout, started.error) == ("ok", "thread ran\n", None)
    # A process a thread of b starts while c runs is b's, not c's.
    ok(
        kernel,
        "import threading, subprocess, time\n"
        "def later():\n    time.sleep(1); subprocess.run(['echo', 'from-b-thread'])\n"
        "threading.Thread(target=later).start()",
        b,
    )
    assert kernel.run_code("import time; time.sleep(2.5); print('c done')", c, timeout=30).stdout == "c done\n"
    assert kernel.run_code("print('b')", b, timeout=30).stdout == "from-b-thread\nb\n"


CHAINED = "try:\n    1/0\nexcept Exception as e:\n    raise ValueError('v') from e\n"


@pytest.mark.parametrize("breaks", [
    "warnings.filters = None",
    "sys.modules['warnings'] = None",
    "warnings.catch_warnings = None",
    "del warnings._showwarning_orig",
])
def test_a_context_that_breaks_the_shared_warnings_module_garbles_no_error_record(kernel, breaks):
    a, b = kernel.create_context(), kernel.create_context()
    expected = kernel.run_code(CHAINED, b, timeout=30).error.traceback
    assert "The above exception was the direct cause" in expected and "~^~" in expected
    kernel.run_code(f"import sys, warnings\n{breaks}", a, timeout=30)
    assert kernel.run_code(CHAINED, b, timeout=30).error.traceback == expected.replace("<cell-1>", "<cell-2>")


@pytest.mark.parametrize("rebinds", ["os.environ = None", "del os.environ", "os.environ = {'X': '1'}"])
def test_a_runs_env_reaches_the_code_and_its_processes_whatever_a_context_did_to_os_environ(kernel, rebinds):
    a, b = kernel.create_context(), kernel.create_context()
    kernel.run_code(f"import os\n{rebinds}", a, timeout=30)
    result = kernel.run_code(
        "import subprocess\nsubprocess.run('echo \"[$PYKERNEL_TEST_VAR]\"', shell=True)",
        b, envs={"PYKERNEL_TEST_VAR": "given"}, timeout=30,
    )
    assert (result.status, result.stdout, result.error) == ("ok", "[given]\n", None)
    after = kernel.run_code("import subprocess\nsubprocess.run('echo \"[$PYKERNEL_TEST_VAR]\"', shell=True)", b, timeout=30)
    assert after.stdout == "[]\n"
