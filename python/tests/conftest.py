"""Shared fixtures for the tests that drive the real ``pykernel serve``.

The binary is ``$PYKERNEL_BIN``, else ``<repo>/.build/debug/pykernel``, else
``<repo>/.build/release/pykernel``. Without one the tests that need it *fail* (they are not
skipped): build it with ``swift build --product pykernel``.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(HERE)
REPO = os.path.dirname(PYTHON_DIR)

# The client package, importable without `pip install ./python`.
if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def locate_pykernel_binary():
    """The pykernel program to test, and a message saying why there is none when it is missing."""
    from_env = os.environ.get("PYKERNEL_BIN")
    if from_env:
        if os.path.isfile(from_env) and os.access(from_env, os.X_OK):
            return from_env, None
        return None, f"PYKERNEL_BIN={from_env!r} is not an executable file."
    candidates = [os.path.join(REPO, ".build", kind, "pykernel") for kind in ("debug", "release")]
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate, None
    return None, (
        "No pykernel binary to test: set PYKERNEL_BIN, or build one with "
        f"`swift build --product pykernel` (looked for {', '.join(candidates)})."
    )


@pytest.fixture(scope="session")
def pykernel_bin():
    """The path of the pykernel program; fails the test (never skips) when there is none."""
    binary, problem = locate_pykernel_binary()
    if binary is None:
        pytest.fail(problem, pytrace=False)
    return binary


def _served_client(pykernel_bin):
    """A PyKernel client with its own fresh server; checks the server exits 0 on close."""
    from pykernel import PyKernel

    client = PyKernel(pykernel_bin)
    try:
        yield client
    finally:
        client.close()
    assert client.returncode == 0, f"pykernel serve exited with status {client.returncode}"


@pytest.fixture
def kernel(pykernel_bin):
    """A PyKernel client with its own fresh server; checks the server exits 0 on close."""
    yield from _served_client(pykernel_bin)


@pytest.fixture(scope="module")
def module_kernel(pykernel_bin):
    """One server for all the tests of a module (each leaves it as it found it); checks it exits 0."""
    yield from _served_client(pykernel_bin)


@pytest.fixture
def raw(pykernel_bin):
    """A ``pykernel serve`` driven byte by byte (see pykernel_raw.RawServer); killed afterwards."""
    from pykernel_raw import RawServer

    server = RawServer(pykernel_bin)
    try:
        yield server
    finally:
        server.kill()
