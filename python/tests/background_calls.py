"""Client calls made from a thread, for tests that act while the call waits (interrupt, input)."""

import threading


def run_in_thread(function, *args, **kwargs):
    """Starts function in a thread; returns (thread, outcome) where outcome gets 'value'/'error'."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def joined(thread, outcome, timeout=30):
    thread.join(timeout)
    assert not thread.is_alive(), "the call did not return"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
