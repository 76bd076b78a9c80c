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


@pytest.mark.parametrize("wait", ["while True: pass", "time.sleep(5)"])
def test_a_timeout_that_lands_near_the_recursion_limit_is_a_timeout_error(kernel, wait):
    # From 3 calls below the limit: 2 below, CPython refuses the call of the stop signal's handler
    # itself (its RecursionError, as python3's SIGINT handler is refused there).
    stopped = 0
    for gap in range(3, 16):
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

