"""Exceptions raised by the PyKernel client.

Every exception the client raises on purpose derives from :class:`PyKernelError`:

* a JSON-RPC error answered by ``pykernel serve`` is raised as ``PyKernelError`` or, for the codes
  listed in ``docs/protocol.md``, as one of its subclasses (``ContextNotFoundError`` for -32001,
  ``InvalidParamsError`` for -32602, ...), with the server's ``code``, ``message`` and ``data``;
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

    def __init__(self, code: Optional[int], message: str, data: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data: Dict[str, Any] = data if isinstance(data, dict) else ({} if data is None else {"value": data})

    @property
    def reason(self) -> Optional[str]:
        """``data.reason`` of an application error (e.g. ``"contextNotFound"``), else ``None``."""
        value = self.data.get("reason")
        return value if isinstance(value, str) else None

    @property
    def field(self) -> Optional[str]:
        """``data.field`` of an invalid-params error (the offending ``params`` member), else ``None``."""
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
    """-32602: a missing or mistyped param (``data.field``), a negative timeout, an unknown
    language, a working directory that does not exist, ..."""

    CODE = -32602


class InternalServerError(PyKernelError):
    """-32603: the server failed while handling a valid request."""

    CODE = -32603


class ContextNotFoundError(PyKernelError, LookupError):
    """-32001: no context has the given id (never created, or deleted)."""

    CODE = -32001


class DefaultContextUndeletableError(PyKernelError):
    """-32002: the ``default`` context cannot be deleted."""

    CODE = -32002


class InterpreterBusyError(PyKernelError):
    """-32003: the interpreter is still occupied by a run already reported as timed out (native
    code that did not stop); retry later."""

    CODE = -32003


class ContextDeletedError(PyKernelError):
    """-32004: the run's context was deleted while the run was queued."""

    CODE = -32004


class ShuttingDownError(PyKernelError):
    """-32005: the server is shutting down and starts no more runs."""

    CODE = -32005


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


_BY_CODE: Dict[int, Type[PyKernelError]] = {
    cls.CODE: cls
    for cls in (
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
    )
    if cls.CODE is not None
}


def error_from_response(error: Any) -> PyKernelError:
    """The exception for a JSON-RPC ``error`` object: the subclass registered for its code, else
    :class:`PyKernelError`."""
    if not isinstance(error, dict):
        return PyKernelError(None, f"malformed error object from the server: {error!r}")
    code = error.get("code")
    message = error.get("message")
    if not isinstance(message, str):
        message = repr(message)
    cls = _BY_CODE.get(code, PyKernelError) if isinstance(code, int) else PyKernelError
    return cls(code if isinstance(code, int) else None, message, error.get("data"))
