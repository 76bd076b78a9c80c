"""The process API of ``pykernel serve`` for the Python client: stateless code runs
(``process.code_run``), shell commands (``process.exec``), sessions of shell commands
(``session.*``) and programs on pseudo-terminals (``pty.*``, :meth:`ProcessMixin.create_pty`),
with the familiar sandbox-toolbox method names.

``ProcessMixin`` only needs ``self.call(method, params, on_notification=...)`` and
``self.add_notification_handler(method, handler)``; :class:`pykernel.client.PyKernel` includes it::

    from pykernel import PyKernel

    with PyKernel() as kernel:
        print(kernel.exec("ls -la").result)

See ``docs/process-api.md`` for the wire protocol and the error codes.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from .charts import Chart, chart_from_json
from .errors import InvalidParamsError

__all__ = [
    "ProcessMixin",
    "ExecuteResponse",
    "CodeRunParams",
    "SessionExecuteRequest",
    "SessionExecuteResponse",
    "Command",
    "Session",
    "SessionCommandLogsResponse",
    "SessionExitedEvent",
    "PtySize",
    "PtyInfo",
    "PtyHandle",
    "ENTRYPOINT_SESSION",
]

#: The reserved session of the command given as ``pykernel serve -- CMD ARG...``.
ENTRYPOINT_SESSION = "entrypoint"

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class ExecuteResponse:
    """The result of ``exec`` / ``code_run``; a failing command is data (see ``exit_code``).

    A stream longer than the server's output limit keeps its first and last bytes;
    ``<name>_truncated`` says it was cut and ``<name>_omitted_bytes`` how many bytes were cut
    between head and tail (see "Output limits" in ``docs/protocol.md``)."""

    exit_code: int
    #: stdout and stderr interleaved in the order they arrived (two pipes: writes close together
    #: to both streams may arrive in either order).
    result: str
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    result_truncated: bool = False
    result_omitted_bytes: int = 0
    stdout_truncated: bool = False
    stdout_omitted_bytes: int = 0
    stderr_truncated: bool = False
    stderr_omitted_bytes: int = 0
    #: ``code_run`` of Python: the matplotlib figures the program showed or left open, each a
    #: typed :class:`~pykernel.charts.Chart` (``chart.type``, ``.title``, ``.elements``, ...) with
    #: its ``png`` (base64), from the wire's ``artifacts.charts``.
    charts: List[Chart] = field(default_factory=list)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "ExecuteResponse":
        return cls(
            exit_code=int(value.get("exit_code", 0)),
            result=value.get("result", ""),
            stdout=value.get("stdout", ""),
            stderr=value.get("stderr", ""),
            timed_out=bool(value.get("timed_out", False)),
            charts=[chart_from_json(chart) for chart in (value.get("artifacts") or {}).get("charts") or []],
            **_caps(value, ("result", "stdout", "stderr")),
        )

    @property
    def artifacts(self) -> "ExecuteResponse":  # Daytona-style `response.artifacts.stdout`.
        return self


@dataclass
class CodeRunParams:
    """The parameters of :meth:`ProcessMixin.code_run` as the product's SDKs pass them
    (``code_run(code, CodeRunParams(argv=[...], env={...}), timeout)``)."""

    argv: Optional[Sequence[str]] = None
    env: Optional[Mapping[str, str]] = None
    #: ``python`` (default), ``javascript`` or ``typescript``.
    language: Optional[str] = None
    cwd: Optional[PathLike] = None


@dataclass
class SessionExecuteRequest:
    """A command for :meth:`ProcessMixin.execute_session_command`."""

    command: str
    run_async: bool = False
    timeout: Optional[float] = None
    #: Alias spelling accepted by some product docs (``var_async``): either flag makes it asynchronous.
    var_async: Optional[bool] = None


@dataclass
class SessionExecuteResponse:
    """``session.exec``: only ``cmd_id`` for an asynchronous command."""

    cmd_id: str
    exit_code: Optional[int] = None
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    output: Optional[str] = None
    timed_out: Optional[bool] = None
    stdout_truncated: Optional[bool] = None
    stdout_omitted_bytes: Optional[int] = None
    stderr_truncated: Optional[bool] = None
    stderr_omitted_bytes: Optional[int] = None
    output_truncated: Optional[bool] = None
    output_omitted_bytes: Optional[int] = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "SessionExecuteResponse":
        caps = _caps(value, ("stdout", "stderr", "output")) if "stdout" in value else {}
        return cls(
            cmd_id=value["cmd_id"],
            exit_code=value.get("exit_code"),
            stdout=value.get("stdout"),
            stderr=value.get("stderr"),
            output=value.get("output"),
            timed_out=value.get("timed_out"),
            **caps,
        )


@dataclass
class Command:
    """A command of a session; ``exit_code`` is ``None`` while it runs."""

    id: str
    command: str
    exit_code: Optional[int] = None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Command":
        return cls(id=value["id"], command=value["command"], exit_code=value.get("exit_code"))


@dataclass
class Session:
    """A session and its commands, oldest first."""

    session_id: str
    commands: List[Command] = field(default_factory=list)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "Session":
        return cls(
            session_id=value["session_id"],
            commands=[Command.from_json(item) for item in value.get("commands") or []],
        )


@dataclass
class SessionCommandLogsResponse:
    """``session.logs``: the logs so far (or in full once the command has exited)."""

    stdout: str = ""
    stderr: str = ""
    output: str = ""
    exit_code: Optional[int] = None
    stdout_truncated: bool = False
    stdout_omitted_bytes: int = 0
    stderr_truncated: bool = False
    stderr_omitted_bytes: int = 0
    output_truncated: bool = False
    output_omitted_bytes: int = 0

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "SessionCommandLogsResponse":
        return cls(
            stdout=value.get("stdout", ""),
            stderr=value.get("stderr", ""),
            output=value.get("output", ""),
            exit_code=value.get("exit_code"),
            **_caps(value, ("stdout", "stderr", "output")),
        )


@dataclass
class SessionExitedEvent:
    """A ``session.exited`` notification: an asynchronous command (or the entrypoint) ended."""

    session: str
    cmd_id: str
    exit_code: int


@dataclass
class PtySize:
    """A terminal's size in character cells (each side 1 to 10,000)."""

    cols: int = 80
    rows: int = 24


@dataclass
class PtyInfo:
    """A PTY as ``pty.get`` / ``pty.list`` show it; ``exit_code`` is ``None`` while it runs
    (``128 + n`` once signal ``n`` ended it, ``signal`` then being ``n``)."""

    id: str
    pid: int
    command: str
    args: List[str]
    cwd: str
    cols: int
    rows: int
    exit_code: Optional[int] = None
    signal: Optional[int] = None

    @property
    def is_running(self) -> bool:
        return self.exit_code is None

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> "PtyInfo":
        return cls(
            id=value["id"], pid=int(value["pid"]), command=value.get("command", ""),
            args=list(value.get("args") or []), cwd=value.get("cwd", ""),
            cols=int(value.get("cols", 0)), rows=int(value.get("rows", 0)),
            exit_code=value.get("exit_code"), signal=value.get("signal"),
        )


class PtyHandle:
    """A program on a pseudo-terminal of its own (:meth:`ProcessMixin.create_pty`).

    What the terminal writes goes to ``on_data`` (bytes, in order, on the client's reader
    thread: keep it short and do not call the client's blocking methods from it). ``wait()``
    returns the exit code once the program has ended and its last output was delivered."""

    def __init__(self, kernel: "ProcessMixin", pty_id: str, on_data: Optional[Callable[[bytes], Any]]) -> None:
        self.id = pty_id
        #: The program's pid (set once ``pty.create`` answered).
        self.pid: Optional[int] = None
        self._kernel = kernel
        self._on_data = on_data
        self._exited = threading.Event()
        #: The exit code (``128 + n`` for signal ``n``) once the program has ended, else ``None``.
        self.exit_code: Optional[int] = None
        #: The signal that ended the program, if one did.
        self.signal: Optional[int] = None

    def send_input(self, data: Union[str, bytes]) -> None:
        """``pty.input``: types ``data`` (``"\\x03"`` is Ctrl-C, ``"\\n"`` Enter); returns once it is
        queued (written in order as the program reads; at most 1 MiB waits: what does not fit is
        queued as the program reads, so a larger input returns once the program has read enough).
        A program that has exited raises :class:`~pykernel.errors.PtyExitedError` (-32019)."""
        if isinstance(data, str):
            self._kernel.call("pty.input", {"id": self.id, "text": data})
        else:
            self._kernel.call("pty.input", {"id": self.id, "data": base64.b64encode(bytes(data)).decode("ascii")})

    def resize(self, cols: Union[int, PtySize], rows: Optional[int] = None) -> None:
        """``pty.resize``: ``resize(120, 40)`` or ``resize(PtySize(cols=120, rows=40))``; the program
        gets SIGWINCH. A side outside 1-10,000 raises ``InvalidParamsError``."""
        if isinstance(cols, PtySize):
            size = cols
        elif rows is None:
            raise TypeError("resize() takes cols and rows, or a PtySize")
        else:
            size = PtySize(cols=cols, rows=rows)
        self._kernel.call("pty.resize", {"id": self.id, "cols": size.cols, "rows": size.rows})

    def kill(self, signal: Union[int, str, None] = None) -> None:
        """``pty.kill``: sends ``signal`` (a number or a name such as ``"TERM"``; SIGKILL by
        default) to the program's whole process group. Does nothing once it has exited."""
        params: Dict[str, Any] = {"id": self.id}
        _put(params, "signal", signal)
        self._kernel.call("pty.kill", params)

    def wait(self, timeout: Optional[float] = None) -> int:
        """Waits until the program has ended (``pty.exited``) and returns its exit code; raises
        ``TimeoutError`` after ``timeout`` seconds, ``PyKernelConnectionError`` if the server ends."""
        from .errors import PyKernelConnectionError

        waited = 0.0
        while not self._exited.wait(0.2):
            waited += 0.2
            if getattr(self._kernel, "closed", False):
                if self._exited.is_set():
                    break
                raise PyKernelConnectionError(f"The server ended before PTY {self.id!r} exited.")
            if timeout is not None and waited >= timeout:
                raise TimeoutError(f"PTY {self.id!r} did not exit within {timeout} s.")
        assert self.exit_code is not None
        return self.exit_code

    def info(self) -> PtyInfo:
        """``pty.get``: the PTY's command, size and exit status."""
        return PtyInfo.from_json(self._kernel.call("pty.get", {"id": self.id}))

    def _notified(self, method: str, note: Dict[str, Any]) -> None:
        if method == "pty.output":
            if self._on_data is not None:
                self._on_data(base64.b64decode(note.get("data", "")))
        elif method == "pty.exited":
            self.exit_code = int(note.get("exit_code", -1))
            self.signal = note.get("signal")
            self._exited.set()


def _command_id(cmd_id: Optional[str], command_id: Optional[str]) -> str:
    """A command's id given as ``cmd_id`` (positional) or ``command_id=`` (the product SDK's name)."""
    if (cmd_id is None) == (command_id is None):
        raise TypeError("give the command's id once: as `cmd_id` or as `command_id`")
    return cmd_id if cmd_id is not None else command_id  # type: ignore[return-value]


async def _follow_on_loop(
    follow: Callable[[Callable[[str], Any], Callable[[str], Any]], SessionCommandLogsResponse],
    on_stdout: Optional[Callable[[str], Any]],
    on_stderr: Optional[Callable[[str], Any]],
) -> SessionCommandLogsResponse:
    """Runs a blocking follow of logs in a worker thread, handing each chunk to its callback on
    the running event loop, in the order written (a coroutine a callback returns is awaited
    before the next chunk's callback is called); the first exception of a callback is raised
    once the follow has returned."""
    loop = asyncio.get_running_loop()
    failures: List[BaseException] = []
    # (callback, text) in the order written; `None` ends it. One consumer calls them one after
    # another (a coroutine's awaited before the next chunk's callback), whichever kind each is.
    pending: "asyncio.Queue[Any]" = asyncio.Queue()

    def relay(callback: Optional[Callable[[str], Any]]) -> Callable[[str], Any]:
        if callback is None:
            return lambda text: None
        return lambda text: loop.call_soon_threadsafe(pending.put_nowait, (callback, text))

    async def await_in_order() -> None:
        while True:
            item = await pending.get()
            if item is None:
                return
            if failures:
                continue
            callback, text = item
            try:
                outcome = callback(text)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception as error:  # noqa: BLE001 -- raised to the caller at the end
                failures.append(error)

    awaiting = asyncio.ensure_future(await_in_order())
    try:
        logs = await asyncio.to_thread(follow, relay(on_stdout), relay(on_stderr))
    finally:
        # After every chunk (their puts were scheduled before the follow's own result).
        pending.put_nowait(None)
        await awaiting
    if failures:
        raise failures[0]
    return logs


def _caps(value: Mapping[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    """``<name>_truncated`` and ``<name>_omitted_bytes`` of each capped stream."""
    caps: Dict[str, Any] = {}
    for name in names:
        caps[f"{name}_truncated"] = bool(value.get(f"{name}_truncated", False))
        caps[f"{name}_omitted_bytes"] = int(value.get(f"{name}_omitted_bytes", 0))
    return caps


_PTY_SETUP_LOCK = threading.Lock()


#: The keys of ``code_run``'s ``params`` given as a mapping.
_CODE_RUN_KEYS = ("argv", "env", "language", "cwd")
#: The keys that ask for an asynchronous session command, as the product's SDKs spell them.
_SESSION_ASYNC_KEYS = ("run_async", "runAsync", "var_async", "async")
#: The keys of a session command request given as a mapping.
_SESSION_REQUEST_KEYS = ("command", *_SESSION_ASYNC_KEYS, "timeout")


def _invalid_params(message: str, field: str, reason: str = "invalid_argument") -> InvalidParamsError:
    """The client's own -32602 error, with the data the server gives one (its reason, the param at fault)."""
    return InvalidParamsError(-32602, message, {"reason": reason, "field": field})


def _unknown_keys(request: Mapping[str, Any], known: Sequence[str], what: str) -> None:
    """Refuses ``request``'s first key that is not one of ``known``, as the server refuses an
    unknown param: a misspelt option is an error, never silently ignored."""
    for key in request:
        if key not in known:
            raise _invalid_params(f"{what}: {key!r} is not a key of its request (its keys: {', '.join(known)})",
                                  str(key), "unknown_parameter")


def _async_flag(name: str, value: Any) -> Optional[bool]:
    """A session command's asynchronous flag named ``name``: a bool, or ``None`` when not given
    (``"false"`` is refused: as a truth value it would ask for an asynchronous command)."""
    if value is not None and not isinstance(value, bool):
        kind = type(value)
        # Named with its module when not a builtin: numpy's bool is `numpy.bool` ("not bool" misleads).
        named = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        raise _invalid_params(f"execute_session_command: {name} must be a bool, not {named} ({value!r})", name)
    return value


def _put(params: Dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        params[key] = value


def _path(value: Optional[PathLike]) -> Optional[str]:
    return os.fspath(value) if value is not None else None


class ProcessMixin:
    """Process API methods for a class that also derives from :class:`pykernel.PyKernel`."""

    call: Callable[..., Any]
    add_notification_handler: Callable[..., None]

    # ------------------------------------------------------------------ stateless runs

    def exec(
        self,
        command: str,
        cwd: Optional[PathLike] = None,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> ExecuteResponse:
        """``process.exec``: runs ``command`` with ``/bin/sh -c`` in its own process group (stdin
        at EOF). On ``timeout`` (seconds, fractions allowed; 0 or ``None`` means none) the whole
        group is killed and ``timed_out`` is true. A missing ``cwd`` raises ``InvalidParamsError``
        (-32602, ``reason`` ``invalid_cwd``, ``field`` ``cwd``)."""
        params: Dict[str, Any] = {"command": command}
        _put(params, "cwd", _path(cwd))
        _put(params, "env", dict(env) if env is not None else None)
        _put(params, "timeout", timeout)
        return ExecuteResponse.from_json(self.call("process.exec", params))

    def code_run(
        self,
        code: str,
        params: Union[CodeRunParams, Mapping[str, Any], str, None] = None,
        timeout: Optional[float] = None,
        *,
        language: Optional[str] = None,
        argv: Optional[Sequence[str]] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[PathLike] = None,
    ) -> ExecuteResponse:
        """``process.code_run``: runs ``code`` in a fresh interpreter (``python`` by default,
        ``javascript`` or ``typescript``); ``argv`` arrives intact as ``sys.argv[1:]``.

        Called as the product's SDKs call it, ``code_run(code, CodeRunParams(argv=..., env=...),
        timeout)`` (``params`` may also be a mapping with those keys), or with keywords
        (``language=``, ``argv=``, ``env=``, ``cwd=``, which win over ``params``' fields); a string
        in ``params``' place is the language. ``timeout`` in seconds (0 or ``None``: none). A
        missing runtime raises a ``PyKernelError`` with code -32014; an unknown ``language``
        raises ``InvalidParamsError`` (``reason`` ``invalid_argument``, ``field`` ``language``),
        and so does an ``argv`` that is a string rather than a list of strings; a mapping's
        unknown key raises ``InvalidParamsError`` (``reason`` ``unknown_parameter``, ``field`` the key)."""
        if isinstance(params, str):
            params = CodeRunParams(language=params)
        elif isinstance(params, Mapping):
            _unknown_keys(params, _CODE_RUN_KEYS, "code_run")
            params = CodeRunParams(**params)
        elif params is not None and not isinstance(params, CodeRunParams):
            if not (hasattr(params, "argv") or hasattr(params, "env")):
                raise TypeError(
                    f"code_run's params must be a CodeRunParams, a mapping or a language name, not {type(params).__name__}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"code_run's timeout must be a number of seconds, not {type(timeout).__name__}")

        def pick(explicit: Any, name: str) -> Any:
            return explicit if explicit is not None else getattr(params, name, None)

        language, argv, env, cwd = pick(language, "language"), pick(argv, "argv"), pick(env, "env"), pick(cwd, "cwd")
        if isinstance(argv, (str, bytes)):
            raise _invalid_params(f"code_run: argv must be a list of strings, not {type(argv).__name__} "
                                  f"({argv!r} would be split into its characters)", "argv")
        request: Dict[str, Any] = {"code": code}
        _put(request, "language", language)
        _put(request, "argv", list(argv) if argv is not None else None)
        _put(request, "env", dict(env) if env is not None else None)
        _put(request, "cwd", _path(cwd))
        _put(request, "timeout", timeout)
        return ExecuteResponse.from_json(self.call("process.code_run", request))

    # ------------------------------------------------------------------ sessions

    def create_session(
        self, session_id: str, cwd: Optional[PathLike] = None, env: Optional[Mapping[str, str]] = None
    ) -> Session:
        """``session.create``: a long-lived shell; returns the new (empty) session. A duplicate
        id is error -32011; a missing ``cwd`` -32602."""
        params: Dict[str, Any] = {"id": session_id}
        _put(params, "cwd", _path(cwd))
        _put(params, "env", dict(env) if env is not None else None)
        return Session.from_json(self.call("session.create", params))

    def execute_session_command(
        self,
        session_id: str,
        command: Union[str, SessionExecuteRequest, Any] = None,
        timeout: Optional[float] = None,
        *,
        run_async: Optional[bool] = None,
        req: Union[str, SessionExecuteRequest, Any] = None,
    ) -> SessionExecuteResponse:
        """``session.exec``: runs a command in the session's shell (sharing its state). ``command``
        (or ``req=``, the product SDK's name) is a string, a request object with ``.command``
        (and optionally ``.run_async`` / ``.var_async`` / ``.timeout``) or a dict with those keys
        (``runAsync`` and ``async`` too, as the TypeScript SDK spells it); explicit keyword arguments
        win over the request's fields. As in the product SDK, the third positional argument is
        ``timeout``; ``run_async`` is keyword-only. Each asynchronous flag (the keyword, the
        request's) must be a bool, else ``InvalidParamsError`` (``field`` the flag); a dict's key
        other than those raises ``InvalidParamsError`` (``reason`` ``unknown_parameter``)."""
        if (command is None) == (req is None):
            raise TypeError("execute_session_command takes the command once: as `command` or as `req`")
        _async_flag("run_async", run_async)
        command = command if command is not None else req
        if isinstance(command, str):
            text, req_async, req_timeout = command, None, None
        elif isinstance(command, Mapping):
            # The TypeScript SDK's object (`{command, runAsync}`), as a dict.
            _unknown_keys(command, _SESSION_REQUEST_KEYS, "execute_session_command")
            if "command" not in command:
                raise _invalid_params("execute_session_command: a request dict needs a 'command' key", "command")
            text = command["command"]
            req_async = any([_async_flag(key, command.get(key)) for key in _SESSION_ASYNC_KEYS])
            req_timeout = command.get("timeout")
        else:
            text = command.command
            # `var_async` is another spelling of `run_async`: either asks for an asynchronous command.
            req_async = any([_async_flag(key, getattr(command, key, None)) for key in ("run_async", "var_async")])
            req_timeout = getattr(command, "timeout", None)
        if run_async is None:
            run_async = bool(req_async)
        if timeout is None:
            timeout = req_timeout
        params: Dict[str, Any] = {"session": session_id, "command": text}
        if run_async:
            params["run_async"] = True
        _put(params, "timeout", timeout)
        return SessionExecuteResponse.from_json(self.call("session.exec", params))

    def get_session(self, session_id: str) -> Session:
        """``session.get``: the session and its commands. Unknown id: error -32010."""
        return Session.from_json(self.call("session.get", {"session": session_id}))

    def list_sessions(self) -> List[Session]:
        """``session.list``: every session (the ``entrypoint`` one included when present)."""
        return [Session.from_json(item) for item in self.call("session.list", {})["sessions"]]

    def get_session_command(self, session_id: str, cmd_id: Optional[str] = None, *, command_id: Optional[str] = None) -> Command:
        """``session.command``: one command (``command_id=``: the product SDK's name for
        ``cmd_id``). Unknown command: error -32012."""
        cmd_id = _command_id(cmd_id, command_id)
        return Command.from_json(self.call("session.command", {"session": session_id, "cmd_id": cmd_id}))

    def get_session_command_logs(
        self,
        session_id: str,
        cmd_id: Optional[str] = None,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
        *,
        command_id: Optional[str] = None,
    ) -> SessionCommandLogsResponse:
        """``session.logs``. Without callbacks: the logs so far. With ``on_stdout``/``on_stderr``:
        ``follow: true`` — each chunk of text is passed to its callback (on the client's reader
        thread) as the command writes it, and this call returns the full logs once the command
        has exited. An exception raised by a callback is re-raised here. ``command_id=`` is
        the product SDK's name for ``cmd_id``."""
        cmd_id = _command_id(cmd_id, command_id)
        params: Dict[str, Any] = {"session": session_id, "cmd_id": cmd_id}
        if on_stdout is None and on_stderr is None:
            return SessionCommandLogsResponse.from_json(self.call("session.logs", params))
        params["follow"] = True

        def on_notification(method: str, note: Dict[str, Any]) -> None:
            if method != "session.output":
                return
            stream = note.get("stream")
            callback = on_stdout if stream == "stdout" else on_stderr if stream == "stderr" else None
            if callback is not None:
                callback(note.get("text", ""))

        return SessionCommandLogsResponse.from_json(
            self.call("session.logs", params, on_notification=on_notification)
        )

    async def get_session_command_logs_async(
        self,
        session_id: str,
        cmd_id: Optional[str] = None,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
        *,
        command_id: Optional[str] = None,
    ) -> SessionCommandLogsResponse:
        """Awaitable ``session.logs`` with ``follow``, as the product's SDKs stream a command's
        logs (``asyncio.create_task(kernel.get_session_command_logs_async(session_id, cmd_id,
        on_stdout, on_stderr))``): each chunk of text is passed to its callback on the event
        loop's thread, in the order written (a callback may be a coroutine function: each is
        awaited before the next chunk's callback is called, all before this returns); returns
        the full logs once the command has exited. An exception raised by a callback is
        raised here once the command has exited. Other calls of the client may be made meanwhile
        (``send_session_command_input``). Cancelling the task (``asyncio.wait_for``) stops the
        callbacks but not the follow, which a thread of the client waits out until the command
        exits or its session is deleted (``delete_session``): the event loop's default executor
        waits for it as ``asyncio.run`` ends."""
        cmd_id = _command_id(cmd_id, command_id)
        return await _follow_on_loop(
            lambda stdout, stderr: self.get_session_command_logs(session_id, cmd_id, stdout, stderr), on_stdout, on_stderr)

    def send_session_command_input(
        self, session_id: str, cmd_id: Optional[str] = None, data: Optional[str] = None, eof: bool = False,
        *, command_id: Optional[str] = None,
    ) -> None:
        """``session.input``: writes ``data`` as it is (no newline is added: send ``"y\\n"`` to
        answer a prompt that reads a line) to a running asynchronous command's stdin (``eof``
        closes it afterwards). ``command_id=`` is the product SDK's name for ``cmd_id``. A
        finished command is error -32013."""
        cmd_id = _command_id(cmd_id, command_id)
        if data is None:
            raise TypeError("send_session_command_input needs the data to send")
        params: Dict[str, Any] = {"session": session_id, "cmd_id": cmd_id, "data": data}
        if eof:
            params["eof"] = True
        self.call("session.input", params)

    def delete_session(self, session_id: str) -> None:
        """``session.delete``: ends the shell and every process it started (TERM, grace, KILL).
        ``entrypoint`` is error -32015; a session whose processes could not all be ended is
        :class:`~pykernel.errors.ProcessesRunningError` (-32020): it stays listed, call again."""
        self.call("session.delete", {"session": session_id})

    def get_entrypoint_session(self) -> Session:
        """The ``entrypoint`` session (``pykernel serve -- CMD ARG...``); -32010 without one."""
        return self.get_session(ENTRYPOINT_SESSION)

    def get_entrypoint_logs(
        self,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
    ) -> SessionCommandLogsResponse:
        """The entrypoint command's logs (followed when callbacks are given)."""
        session = self.get_entrypoint_session()
        if not session.commands:
            return SessionCommandLogsResponse()
        return self.get_session_command_logs(ENTRYPOINT_SESSION, session.commands[0].id, on_stdout, on_stderr)

    async def get_entrypoint_logs_async(
        self,
        on_stdout: Optional[Callable[[str], Any]] = None,
        on_stderr: Optional[Callable[[str], Any]] = None,
    ) -> SessionCommandLogsResponse:
        """The entrypoint command's logs followed, awaitable, as
        :meth:`get_session_command_logs_async` follows a command's."""
        session = await asyncio.to_thread(self.get_entrypoint_session)
        if not session.commands:
            return SessionCommandLogsResponse()
        return await self.get_session_command_logs_async(ENTRYPOINT_SESSION, session.commands[0].id, on_stdout, on_stderr)

    # ------------------------------------------------------------------ PTY sessions

    def create_pty(
        self,
        id: Optional[str] = None,
        command: Optional[str] = None,
        args: Optional[Sequence[str]] = None,
        cwd: Optional[PathLike] = None,
        env: Optional[Mapping[str, str]] = None,
        cols: int = 80,
        rows: int = 24,
        on_data: Optional[Callable[[bytes], Any]] = None,
        pty_size: Optional[PtySize] = None,
    ) -> PtyHandle:
        """``pty.create``: starts ``command`` (the user's shell by default) with ``args`` on a
        pseudo-terminal of ``cols`` x ``rows`` (or ``pty_size``) — its controlling terminal, in a
        session and process group of its own, ``TERM=xterm-256color`` unless ``env`` sets it —
        and returns its handle. ``on_data(bytes)`` gets what the terminal writes. The id is
        chosen here when not given (so that no output arrives before its handle exists).

        Errors: a running PTY with this id, :class:`~pykernel.errors.PtyExistsError` (-32018); a
        command not found, :class:`~pykernel.errors.SpawnFailedError` (-32016, ``field``
        ``command``); a size outside 1-10,000 or a bad ``cwd``, ``InvalidParamsError``."""
        if pty_size is not None:
            cols, rows = pty_size.cols, pty_size.rows
        handle = PtyHandle(self, id if id is not None else str(uuid.uuid4()), on_data)
        params: Dict[str, Any] = {"id": handle.id, "cols": cols, "rows": rows}
        _put(params, "command", command)
        _put(params, "args", list(args) if args is not None else None)
        _put(params, "cwd", _path(cwd))
        _put(params, "env", dict(env) if env is not None else None)
        lock, running, successors = self._pty_handles()
        with lock:
            # A PTY of this id still running here keeps its output (the server refuses the
            # creation, or accepts it once that one has exited): this handle comes after it.
            if handle.id in running:
                successors[handle.id] = handle
            else:
                running[handle.id] = handle
        try:
            result = self.call("pty.create", params)
        except BaseException:
            with lock:
                if successors.get(handle.id) is handle:
                    del successors[handle.id]
                elif running.get(handle.id) is handle:
                    del running[handle.id]
            raise
        handle.pid = int(result["pid"])
        return handle

    def get_pty(self, pty_id: str) -> PtyInfo:
        """``pty.get``: one PTY, running or exited. Unknown id:
        :class:`~pykernel.errors.PtyNotFoundError` (-32017)."""
        return PtyInfo.from_json(self.call("pty.get", {"id": pty_id}))

    def list_ptys(self) -> List[PtyInfo]:
        """``pty.list``: every PTY the server keeps (running ones and the recent exited ones)."""
        return [PtyInfo.from_json(item) for item in self.call("pty.list", {})["ptys"]]

    def _pty_handles(self) -> Any:
        """(lock, {id: running PtyHandle}, {id: handle created while one of its id was still
        running here}) of this client, with the notification handlers installed once. A PTY's
        notifications go to the running handle of its id; its ``pty.exited`` makes the next one
        (if any) the running one."""
        state = self.__dict__.get("_pykernel_ptys")
        if state is not None:
            return state
        with _PTY_SETUP_LOCK:
            state = self.__dict__.get("_pykernel_ptys")
            if state is None:
                state = (threading.Lock(), {}, {})
                self.__dict__["_pykernel_ptys"] = state

                def route(method: str, note: Dict[str, Any]) -> None:
                    lock, running, successors = state
                    with lock:
                        handle = running.get(note.get("id"))
                        if method == "pty.exited" and handle is not None:
                            del running[handle.id]
                            successor = successors.pop(handle.id, None)
                            if successor is not None:
                                running[handle.id] = successor
                    if handle is not None:
                        handle._notified(method, note)

                self.add_notification_handler("pty.output", route)
                self.add_notification_handler("pty.exited", route)
        return state

    # ------------------------------------------------------------------ notifications

    def on_session_exited(self, callback: Callable[[SessionExitedEvent], Any]) -> None:
        """Calls ``callback(SessionExitedEvent)`` on the reader thread whenever an asynchronous
        command (or the entrypoint) ends — no polling needed. Keep it short and do not call the
        client's blocking methods from it."""

        def handler(method: str, note: Dict[str, Any]) -> None:
            callback(
                SessionExitedEvent(
                    session=note.get("session", ""), cmd_id=note.get("cmd_id", ""),
                    exit_code=int(note.get("exit_code", 0)),
                )
            )

        self.add_notification_handler("session.exited", handler)
