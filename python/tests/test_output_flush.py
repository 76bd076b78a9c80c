"""A flush of the standard streams sends the output written so far at once; unflushed output is
sent at the end of the coalescing window while the code still runs.

The server runs with `--output-interval 600`: output that nobody flushes waits for the run's end
(or 256 KiB), so a `code.output` notification that arrives while the code still waits can only
come from the flush. Each run flushes one way, then waits until the test has seen the output
(a file the test creates); unflushed output would leave both waiting until the test gives up.
"""

import contextlib

import pytest

from pykernel_raw import RawServer


@contextlib.contextmanager
def served(pykernel_bin, arguments=()):
    raw = RawServer(pykernel_bin, list(arguments))
    try:
        yield raw
    finally:
        raw.kill()


@contextlib.contextmanager
def created(server, isolation):
    id = server.result("context.create", {"isolation": isolation})["id"]
    try:
        yield id
    finally:
        server.call("context.delete", {"context": id})


@pytest.fixture(scope="module")
def server(pykernel_bin):
    with served(pykernel_bin, ["--output-interval", "600"]) as raw:
        yield raw


@pytest.fixture(scope="module", params=["namespace", "process"])
def context(request, server):
    with created(server, request.param) as id:
        yield id


def wait_for_file(path):
    return ("import os as _os, time as _time\n_end = _time.monotonic() + 60\n"
            f"while not _os.path.exists({str(path)!r}) and _time.monotonic() < _end:\n"
            "    _time.sleep(0.005)\n")


FLUSHES = {
    "print(flush=True)": ("print('a', flush=True)\n", [("stdout", "a\n")]),
    "sys.stdout.flush()": ("import sys\nsys.stdout.write('b')\nsys.stdout.flush()\n", [("stdout", "b")]),
    "sys.stderr.buffer.flush()": ("import sys\nsys.stderr.buffer.write(b'c\\n')\nsys.stderr.buffer.flush()\n",
                                  [("stderr", "c\n")]),
    "a logging handler": ("import logging, sys\nlog = logging.getLogger('flush-test')\n"
                          "handler = logging.StreamHandler(sys.stderr)\nlog.addHandler(handler)\n"
                          "log.warning('d')\nlog.removeHandler(handler)\n", [("stderr", "d\n")]),
    "a thread's flush": ("import threading\nt = threading.Thread(target=lambda: print('e', flush=True))\n"
                         "t.start()\nt.join()\n", [("stdout", "e\n")]),
    "stream order": ("import sys\nprint('x')\nsys.stderr.write('y\\n')\nprint('z', flush=True)\n",
                     [("stdout", "x\n"), ("stderr", "y\n"), ("stdout", "z\n")]),
    "descriptor output": ("import os, sys\nos.write(1, b'f\\n')\nsys.stdout.flush()\n", [("stdout", "f\n")]),
}


def output_while_running(server, context, code, expected, tmp_path, what):
    """Runs `code`, then waits until a file the test creates exists; returns the output that
    arrived before the test created it (chunks of one stream in a row joined: they may be split
    anywhere), once it holds as many characters as `expected`."""
    signal = tmp_path / "seen"
    id = server.request("code.run", {"code": code + wait_for_file(signal) + "print('end')\n", "context": context})
    received = []
    while sum(len(text) for _, text in received) < sum(len(text) for _, text in expected):
        message = server.wait_for(
            lambda m: m.get("method") == "code.output" and m["params"].get("request_id") == id, timeout=30, what=what)
        stream, text = message["params"]["stream"], message["params"]["text"]
        if received and received[-1][0] == stream:
            received[-1] = (stream, received[-1][1] + text)
        else:
            received.append((stream, text))
    signal.touch()
    result = server.response(id)["result"]
    assert result["status"] == "ok", result
    assert result["stdout"].endswith("end\n")
    return received


@pytest.mark.parametrize("name", FLUSHES)
def test_a_flush_sends_the_output_while_the_code_runs(server, context, name, tmp_path):
    code, expected = FLUSHES[name]
    assert output_while_running(server, context, code, expected, tmp_path, f"the flushed output of {name!r}") == expected


def test_output_interval_is_checked(pykernel_bin):
    import subprocess
    for value in ["-1", "nan", "3601"]:
        completed = subprocess.run([pykernel_bin, "serve", f"--output-interval={value}"], input=b"",
                                   capture_output=True, timeout=30)
        assert completed.returncode != 0
        assert b"--output-interval must be between 0 and 3600 seconds." in completed.stderr


def test_unflushed_output_waits_for_the_interval(server, context, tmp_path):
    """With `--output-interval 600` (passed on to process contexts' workers too), a print waits:
    it leaves with the flush 0.3 s later, in one chunk."""
    signal = tmp_path / "seen"
    code = "import time\nprint('x')\ntime.sleep(0.3)\nprint('z', flush=True)\n" + wait_for_file(signal)
    id = server.request("code.run", {"code": code, "context": context})
    message = server.wait_for(lambda m: m.get("method") == "code.output" and m["params"].get("request_id") == id,
                              timeout=30, what="the flushed output")
    signal.touch()
    assert server.response(id)["result"]["status"] == "ok"
    assert message["params"]["text"] == "x\nz\n"


@pytest.fixture(scope="module")
def default_server(pykernel_bin):
    """A server with the default 20 ms coalescing window."""
    with served(pykernel_bin) as raw:
        yield raw


@pytest.fixture(scope="module", params=["namespace", "process"])
def default_context(request, default_server):
    with created(default_server, request.param) as id:
        yield id


UNFLUSHED = {
    "print": ("print('a')\n", [("stdout", "a\n")]),
    "sys.stderr.write": ("import sys\nsys.stderr.write('b\\n')\n", [("stderr", "b\n")]),
    "a thread's print": ("import threading\nt = threading.Thread(target=print, args=('c',))\nt.start()\nt.join()\n",
                         [("stdout", "c\n")]),
    "descriptor output": ("import os\nos.write(1, b'd\\n')\n", [("stdout", "d\n")]),
    "a subprocess": ("import subprocess\nsubprocess.run(['echo', 'e'])\n", [("stdout", "e\n")]),
    "two streams": ("import sys\nprint('f')\nsys.stderr.write('g\\n')\n", [("stdout", "f\n"), ("stderr", "g\n")]),
}


@pytest.mark.parametrize("name", UNFLUSHED)
def test_unflushed_output_is_sent_while_the_code_runs(default_server, default_context, name, tmp_path):
    """With the default 20 ms window, a run answered from the thread where it ends starts relaying
    its output once that output is due: the code waits until the test has seen it."""
    code, expected = UNFLUSHED[name]
    received = output_while_running(default_server, default_context, code, expected, tmp_path,
                                    f"the output of {name!r} before the run's end")
    assert received == expected


def test_output_staged_as_its_relay_starts_is_relayed_by_one_task(default_server, default_context):
    """Two prints, then a wait: the relaying task starts at the end of the window, as it takes
    the second print (staged by the interpreter thread). It started twice once (the window's
    timer, and again on the way, as the staged print woke the reader); the two tasks both waited
    for output and one's continuation was dropped: Swift's "SWIFT TASK CONTINUATION MISUSE"
    warning arrived in the run's stderr (4 runs in 5)."""
    for _ in range(5):
        id = default_server.request("code.run", {"code": "print(1)\nprint(2)\nimport time\ntime.sleep(0.1)\n",
                                                 "context": default_context})
        result = default_server.response(id)["result"]
        assert (result["status"], result["stdout"], result["stderr"]) == ("ok", "1\n2\n", "")
        streamed = "".join(m["params"]["text"] for m in default_server.notifications(id) if m["method"] == "code.output")
        assert streamed == "1\n2\n"
