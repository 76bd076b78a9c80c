"""Exceptions raised by the PyKernel client.

Every exception the client raises on purpose derives from :class:`PyKernelError`:

* a JSON-RPC error answered by ``pykernel serve`` is raised as ``PyKernelError`` or, for the errors
  listed in ``docs/protocol.md``, as one of its subclasses, chosen by ``data.reason`` when the
  server names one (``context_not_found`` → ``ContextNotFoundError``, ``session_not_found`` →
  ``SessionNotFoundError``, ...) and else by the code (``InvalidParamsError`` for -32602, ...),
  with the server's ``code``, ``message`` and ``data``;
* a run that exceeded its timeout raises :class:`PyKernelTimeoutError`, which carries the run's
  :class:`~pykernel.types.ExecutionResult` (output printed before the stop included) as ``.result``;
* :class:`PyKernelNotFoundError` when the ``pykernel`` program cannot be found or started, and
  :class:`PyKernelConnectionError` when the server has exited or its pipes broke.

An exception raised by the user's code is *not* a Python exception on the client side: it is an
``ExecutionResult`` whose ``error`` is an ``ExecutionError`` (``status == "error"``).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Type

__all__ = [
    "PyKernelError",
    "ParseError",
    "InvalidRequestError",
    "MethodNotFoundError",
    "InvalidParamsError",
    "InternalServerError",
    "ContextNotFoundError",
    "DefaultContextUndeletableError",
    "InterpreterBusyError",
    "ContextDeletedError",
    "ShuttingDownError",
    "RunQueueFullError",
    "ContextDeadError",
    "SessionNotFoundError",
    "SessionExistsError",
    "CommandNotFoundError",
    "CommandFinishedError",
    "RuntimeNotFoundError",
    "ReservedSessionError",
    "SpawnFailedError",
    "PtyNotFoundError",
    "PtyExistsError",
    "PtyExitedError",
    "ProcessesRunningError",
    "PyKernelTimeoutError",
    "PyKernelNotFoundError",
    "PyKernelConnectionError",
    "error_from_response",
]


class PyKernelError(Exception):
    """An error reported by ``pykernel serve`` (``code`` is the JSON-RPC error code), or a failure
    of the client itself (``code`` is ``None``).

    ``data`` is the error's ``data`` object (``{}`` when the server sent none); for convenience
    ``reason`` and ``field`` read ``data["reason"]`` (application errors) and ``data["field"]``
    (-32602 invalid params) when present.
    """

    #: The JSON-RPC code this class stands for (``None`` for the base class and client failures).
    CODE: Optional[int] = None
    #: The ``data.reason`` this class stands for (``None`` when it stands for a code only).
    REASON: Optional[str] = None

    def __init__(self, code: Optional[int], message: str, data: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data: Dict[str, Any] = data if isinstance(data, dict) else ({} if data is None else {"value": data})

    @property
    def reason(self) -> Optional[str]:
        """``data.reason`` of an application or invalid-params error (e.g. ``"context_not_found"``,
        ``"invalid_argument"``), else ``None``."""
        value = self.data.get("reason")
        return value if isinstance(value, str) else None

    @property
    def field(self) -> Optional[str]:
        """``data.field`` of an invalid-params error (the wire name of the offending ``params``
        member), else ``None``."""
        value = self.data.get("field")
        return value if isinstance(value, str) else None

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        return f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, data={self.data!r})"


class ParseError(PyKernelError):
    """-32700: the server could not parse a line as JSON."""

    CODE = -32700


class InvalidRequestError(PyKernelError):
    """-32600: not a valid request object, a duplicate id in flight, or a line over 64 MiB."""

    CODE = -32600


class MethodNotFoundError(PyKernelError):
    """-32601: the server has no such method (``data.method`` names it)."""

    CODE = -32601


class InvalidParamsError(PyKernelError, ValueError):
    """-32602: a missing or mistyped param, a param the method does not take, a negative timeout,
    an unknown language, a working directory that does not exist, ...: ``reason`` is
    ``"invalid_argument"``, ``"unknown_parameter"`` or ``"invalid_cwd"`` and ``field`` names the param."""

    CODE = -32602


class InternalServerError(PyKernelError):
    """-32603: the server failed while handling a valid request."""

    CODE = -32603


class ContextNotFoundError(PyKernelError, LookupError):
    """-32001: no context has the given id (never created, or deleted)."""

    CODE = -32001
    REASON = "context_not_found"


class DefaultContextUndeletableError(PyKernelError):
    """-32002: the ``default`` context cannot be deleted."""

    CODE = -32002
    REASON = "default_context_undeletable"


class InterpreterBusyError(PyKernelError):
    """-32003: the interpreter is still occupied by a run already reported as timed out (native
    code that did not stop); retry later."""

    CODE = -32003
    REASON = "interpreter_busy"


class ContextDeletedError(PyKernelError):
    """-32004: the run's context was deleted while the run was queued."""

    CODE = -32004
    REASON = "context_deleted"


class ShuttingDownError(PyKernelError):
    """-32005: the server is shutting down and starts no more runs."""

    CODE = -32005
    REASON = "shutting_down"


class RunQueueFullError(PyKernelError):
    """-32007: too many runs are queued; the run was not queued (retry when some have finished)."""

    CODE = -32007
    REASON = "run_queue_full"


class ContextDeadError(PyKernelError):
    """-32006: the process context's worker has ended (it crashed, or a run that did not stop was
    killed with it); its state is lost. ``restart_context`` gives it a fresh worker (same id),
    ``delete_context`` removes it."""

    CODE = -32006
    REASON = "context_dead"


class SessionNotFoundError(PyKernelError, LookupError):
    """-32010: no session has the given id."""

    CODE = -32010
    REASON = "session_not_found"


class SessionExistsError(PyKernelError):
    """-32011: a session with the given id exists already."""

    CODE = -32011
    REASON = "session_exists"


class CommandNotFoundError(PyKernelError, LookupError):
    """-32012: the session has no command with the given id."""

    CODE = -32012
    REASON = "command_not_found"


class CommandFinishedError(PyKernelError):
    """-32013: the command has finished (it takes no more input)."""

    CODE = -32013
    REASON = "command_finished"


class RuntimeNotFoundError(PyKernelError):
    """-32014: the runtime of the requested language is not installed."""

    CODE = -32014
    REASON = "runtime_not_found"


class ReservedSessionError(PyKernelError):
    """-32015: the session id is reserved (``entrypoint``)."""

    CODE = -32015
    REASON = "reserved_session"


class SpawnFailedError(PyKernelError):
    """-32016: the command could not be started."""

    CODE = -32016
    REASON = "spawn_failed"


class PtyNotFoundError(PyKernelError, LookupError):
    """-32017: no PTY has the given id (``pty.input``, ``pty.resize``, ``pty.kill``, ``pty.get``)."""

    CODE = -32017
    REASON = "pty_not_found"


class PtyExistsError(PyKernelError):
    """-32018: ``create_pty`` with the id of a PTY that is still running."""

    CODE = -32018
    REASON = "pty_exists"


class PtyExitedError(PyKernelError):
    """-32019: input or a resize for a PTY whose program has exited (``get_pty`` shows how)."""

    CODE = -32019
    REASON = "pty_exited"


class ProcessesRunningError(PyKernelError):
    """-32020: ``session.delete`` could not end every process of the session (they survived
    SIGKILL, or the server is out of file descriptors); the session stays listed, and deleting it
    again tries again."""

    CODE = -32020
    REASON = "processes_running"


class PyKernelTimeoutError(PyKernelError, TimeoutError):
    """A run exceeded its timeout (``status == "timeout"``).

    ``result`` is the run's :class:`~pykernel.types.ExecutionResult`: the output printed before
    the stop, and ``result.error`` (named ``TimeoutError``) with the traceback showing where the
    code was. The context keeps its state.
    """

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(None, message)
        self.result = result


class PyKernelNotFoundError(PyKernelError, FileNotFoundError):
    """The ``pykernel`` program was not found (argument, ``PYKERNEL_BIN``, ``PATH``) or could not
    be started."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


class PyKernelConnectionError(PyKernelError, ConnectionError):
    """The server exited, or its pipes broke, before answering; or the client was closed."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message)


_SERVER_ERRORS = (
    ParseError,
    InvalidRequestError,
    MethodNotFoundError,
    InvalidParamsError,
    InternalServerError,
    ContextNotFoundError,
    DefaultContextUndeletableError,
    InterpreterBusyError,
    ContextDeletedError,
    ShuttingDownError,
    RunQueueFullError,
    ContextDeadError,
    SessionNotFoundError,
    SessionExistsError,
    CommandNotFoundError,
    CommandFinishedError,
    RuntimeNotFoundError,
    ReservedSessionError,
    SpawnFailedError,
    PtyNotFoundError,
    PtyExistsError,
    PtyExitedError,
    ProcessesRunningError,
)
_BY_CODE: Dict[int, Type[PyKernelError]] = {cls.CODE: cls for cls in _SERVER_ERRORS if cls.CODE is not None}
_BY_REASON: Dict[str, Type[PyKernelError]] = {cls.REASON: cls for cls in _SERVER_ERRORS if cls.REASON is not None}


def error_from_response(error: Any) -> PyKernelError:
    """The exception for a JSON-RPC ``error`` object: the subclass registered for its
    ``data.reason``, else for its code, else :class:`PyKernelError`."""
    if not isinstance(error, dict):
        return PyKernelError(None, f"malformed error object from the server: {error!r}")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(message, str):
        message = repr(message)
    data = error.get("data")
    reason = data.get("reason") if isinstance(data, dict) else None
    cls = _BY_REASON.get(reason) if isinstance(reason, str) else None
    if cls is None:
        cls = _BY_CODE.get(code, PyKernelError) if isinstance(code, int) else PyKernelError
    return cls(code if isinstance(code, int) else None, message, data)
