"""The PyKernel client: drives ``pykernel serve`` (JSON-RPC 2.0 over newline-delimited JSON on the
server's stdin/stdout, see ``docs/protocol.md``) from Python.

Threading model
---------------
One background *reader thread* reads every line the server writes. Responses are matched to
their requests by ``id``; notifications that carry ``params.request_id`` (``code.output``) are
handed to the callbacks of that request, on the reader thread, in the order the server sent them
and always before the response that ends the request (the server writes a request's notifications
before its response). Writes to the server's stdin are serialized by a lock, one whole line at a
time (a Ctrl-C that comes during a write is raised at once, and the line is still finished: the
stream is never left with half a request). Any number of threads may therefore call the client
at once: each call waits for its own response only. Runs in different contexts are accepted concurrently by the server: runs of
namespace contexts (``default`` included) execute one at a time in the server's one interpreter,
while each process context runs in a worker of its own, in parallel with the others; runs of one
context queue in arrival order.

Callbacks run on the reader thread: while one runs, no other response or output is delivered,
so keep them short, and do not call the client's blocking methods from a callback (that would
wait for a response only the reader thread can deliver; it raises ``RuntimeError`` instead).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from .errors import (
    InvalidParamsError,
    InvalidRequestError,
    PyKernelConnectionError,
    PyKernelError,
    PyKernelNotFoundError,
    PyKernelTimeoutError,
    error_from_response,
)
from .process import ProcessMixin
from .types import Context, ExecutionError, ExecutionResult, KernelInfo, OutputMessage, Result

__all__ = ["PyKernel", "DEFAULT_CONTEXT", "MAX_LINE_BYTES"]

#: The id of the context that always exists and where code runs when no context is named.
DEFAULT_CONTEXT = "default"
#: The longest line ``pykernel serve`` accepts (a longer one is answered -32600 with a null id,
#: so the client refuses to send it).
MAX_LINE_BYTES = 64 << 20

ContextLike = Union[Context, str]
NotificationHandler = Callable[[str, Dict[str, Any]], None]

_JSONRPC = "2.0"
#: The longest write a pipe takes whole or not at all (POSIX's ``PIPE_BUF``): a signal cannot
#: leave such a line half written.
_ATOMIC_PIPE_WRITE = select.PIPE_BUF
#: How long the reader goes on reading the server's stdout after the server has exited, when
#: another process (one the server started) holds the pipe open so that no end of file comes.
_DRAIN_AFTER_EXIT = 1.0


def _finite(value: Any) -> bool:
    """Whether JSON can carry ``value``: no NaN or infinity in it, however deep."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(item) for item in value)
    return True


def _serializable(value: Any) -> bool:
    """Whether ``json.dumps`` can write ``value``."""
    try:
        json.dumps(value, allow_nan=True)
        return True
    except TypeError:
        return False


def _first_param(message: Dict[str, Any], is_at_fault: Callable[[Any], bool]) -> Optional[str]:
    """The name of the first of ``message``'s params that ``is_at_fault``, if any."""
    params = message.get("params")
    return next((name for name, value in params.items() if is_at_fault(value)), None) if isinstance(params, dict) else None


def _invalid_argument(field: Optional[str]) -> Dict[str, Any]:
    """The data the server gives an invalid param: its reason, and the param at fault."""
    return {"reason": "invalid_argument", **({"field": field} if field is not None else {})}


def _context_id(context: Optional[ContextLike]) -> Optional[str]:
    if context is None:
        return None
    if isinstance(context, Context):
        return context.id
    if isinstance(context, str):
        return context
    raise TypeError(f"context must be a Context or a context id string, not {type(context).__name__}")


def _resolve_binary(binary: Optional[Union[str, "os.PathLike[str]"]]) -> str:
    """The ``pykernel`` program: the argument, else ``$PYKERNEL_BIN``, else ``pykernel`` on PATH."""
    if binary is not None:
        source, candidate = "the binary argument", os.fspath(binary)
    elif os.environ.get("PYKERNEL_BIN"):
        source, candidate = "PYKERNEL_BIN", os.environ["PYKERNEL_BIN"]
    else:
        found = shutil.which("pykernel")
        if found is None:
            raise PyKernelNotFoundError(
                "Cannot find the pykernel program: pass its path as PyKernel(binary=...), set "
                "PYKERNEL_BIN, or put pykernel on PATH (build it with `swift build --product pykernel`)."
            )
        return found
    if os.sep not in candidate and not os.path.exists(candidate):
        found = shutil.which(candidate)
        if found is not None:
            return found
    if not os.path.isfile(candidate):
        raise PyKernelNotFoundError(f"The pykernel program given by {source} does not exist: {candidate!r}.")
    if not os.access(candidate, os.X_OK):
        raise PyKernelNotFoundError(f"The pykernel program given by {source} is not executable: {candidate!r}.")
    return candidate


def _reads(fd: int, exit_fd: int, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The reads of the server's stdout (``fd``), of up to ``chunk_size`` bytes each (a buffered
    ``readline`` reads a long line 8 KiB per system call; here every read takes what the pipe
    holds), until its end of file, or until the server has exited (``exit_fd``, its pidfd, is
    readable) and what it wrote has been read: a process the server started may hold the pipe
    open after the server's death, and then no end of file comes. After the exit, what the pipe
    holds is read (the dead server's last responses) for at most ``_DRAIN_AFTER_EXIT`` seconds
    (such a holder may go on writing)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.register(exit_fd, select.POLLIN)
    drain_until: Optional[float] = None
    while True:
        if drain_until is None:
            if any(ready == exit_fd for ready, _ in poller.poll()):
                poller.unregister(exit_fd)
                drain_until = time.monotonic() + _DRAIN_AFTER_EXIT
                continue
        elif time.monotonic() > drain_until or not poller.poll(0):
            return
        chunk = os.read(fd, chunk_size)
        if not chunk:
            return
        yield chunk


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream read in ``chunks`` (each without its ``\\n``; a last one without a
    newline too); each byte is searched for a newline once."""
    pending: List[bytes] = []  # the start of a line that spans reads
    for chunk in chunks:
        end = chunk.find(b"\n")
        if end < 0:
            pending.append(chunk)
            continue
        if pending:
            pending.append(chunk[:end])
            yield b"".join(pending)
            pending = []
        else:
            yield chunk[:end]
        start = end + 1
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                break
            yield chunk[start:end]
            start = end + 1
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield b"".join(pending)


class _Pending:
    """A request waiting for its response."""

    __slots__ = ("id", "method", "event", "result", "error", "on_notification", "callback_error", "run_context")

    def __init__(self, request_id: int, method: str, on_notification: Optional[NotificationHandler],
                 run_context: Optional[str] = None) -> None:
        self.id = request_id
        self.method = method
        #: The context of a ``code.run`` (what Ctrl-C while waiting for it interrupts).
        self.run_context = run_context
        self.event = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.on_notification = on_notification
        self.callback_error: Optional[BaseException] = None


def _stop_process(process: "subprocess.Popen[bytes]", owner_pid: int) -> None:
    """Finalizer: stops a server the program forgot to close (SIGTERM, then SIGKILL) and closes
    its stdin (the reader thread closes its stdout). In a forked child of the process that
    started it, only closes the child's copy of its stdin: the server is the parent's."""
    if os.getpid() == owner_pid and process.poll() is None:
        try:
            process.terminate()
            process.wait(2)
        except subprocess.TimeoutExpired:
            process.kill()
        except OSError:
            pass
    try:
        process.stdin.close()  # type: ignore[union-attr]
    except (OSError, ValueError):
        pass


class PyKernel(ProcessMixin):
    """A ``pykernel serve`` subprocess and a thread-safe client for it.

    ::

        with PyKernel() as kernel:
            kernel.run_code("counter = 1")
            print(kernel.run_code("counter += 1; print(counter)").stdout)   # 2

    :param binary: path of the ``pykernel`` program; default ``$PYKERNEL_BIN``, else ``pykernel``
        on ``PATH``. :class:`~pykernel.errors.PyKernelNotFoundError` when none is found.
    :param args: extra arguments after ``serve`` (e.g. ``("--venv", path)`` or
        ``("--log-level", "debug")``).
    :param cwd: the server's working directory (the ``default`` context's cwd, and what relative
        context cwds resolve against); default: this process's.
    :param env: the server's whole environment, as for :class:`subprocess.Popen` (default: this
        process's).

    The server's stderr (its logs, quiet by default) goes to this process's stderr. The server
    runs in its own session, so a Ctrl-C meant for this program does not reach it; ``close()``
    (or leaving the ``with`` block) shuts it down.

    A client belongs to the process that made it. In a child that process forks (``os.fork``,
    ``multiprocessing`` with the ``fork`` start method) every call raises
    :class:`~pykernel.errors.PyKernelConnectionError` (the server's answers go to the parent's
    reader thread), and ``close()`` leaves the server alone: start a ``PyKernel`` in the child.
    """

    def __init__(
        self,
        binary: Optional[Union[str, "os.PathLike[str]"]] = None,
        *,
        args: Sequence[str] = (),
        cwd: Optional[Union[str, "os.PathLike[str]"]] = None,
        env: Optional[Mapping[str, str]] = None,
    ) -> None:
        self.binary = _resolve_binary(binary)
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()  # Guards _pending, _abandoned, _closing, _eof.
        self._write_lock = threading.Lock()  # One line at a time on the server's stdin.
        self._ids = itertools.count(1)
        self._pending: Dict[int, _Pending] = {}
        self._abandoned: set = set()
        self._handlers: Dict[str, List[NotificationHandler]] = {}
        self._closing = False
        self._eof = False
        try:
            self._process = subprocess.Popen(
                [self.binary, "serve", *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=None,
                cwd=os.fspath(cwd) if cwd is not None else None,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        except OSError as error:
            if cwd is not None and not os.path.isdir(cwd):
                raise PyKernelNotFoundError(f"The working directory {os.fspath(cwd)!r} for pykernel serve does not exist") from error
            raise PyKernelNotFoundError(f"Cannot start {self.binary!r}: {error}") from error
        self._finalizer = weakref.finalize(self, _stop_process, self._process, self._owner_pid)
        try:
            exit_fd = os.pidfd_open(self._process.pid)  # readable once the server has exited
        except OSError:
            self._kill()
            self._process.stdout.close()  # type: ignore[union-attr]
            raise
        self._reader = threading.Thread(target=PyKernel._read_loop, args=(weakref.ref(self), self._process, exit_fd),
                                        name="pykernel-reader", daemon=True)
        self._reader.start()
        try:
            self._info = KernelInfo.from_json(self._request("kernel.info", None, wait=60.0))
        except BaseException:
            self._kill()
            self._reader.join(5.0)  # it closes the server's stdout
            raise

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "PyKernel":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self, timeout: float = 5.0) -> None:
        """Shuts the server down: sends ``shutdown`` (runs in flight are interrupted and answered
        ``interrupted``), waits for it to exit, and kills it if it has not exited within
        ``timeout`` seconds. Idempotent. Calls made afterwards raise
        :class:`~pykernel.errors.PyKernelConnectionError`."""
        self._refuse_on_reader_thread("close()")
        if os.getpid() != self._owner_pid:
            # A forked child's copy: the server and its reader are the parent's; only this
            # process's copies of the pipes are closed.
            self._finalizer.detach()
            for pipe in (self._process.stdin, self._process.stdout):
                try:
                    pipe.close()  # type: ignore[union-attr]
                except (OSError, ValueError):
                    pass
            return
        with self._lock:
            already = self._closing
            self._closing = True
            eof = self._eof
        deadline = time.monotonic() + timeout
        if already:
            self._wait_exit(deadline)
            return
        if not eof and self._process.poll() is None:
            try:
                self._request("shutdown", None, wait=max(timeout, 0.0), closing=True)
            except PyKernelError:
                pass
        try:
            with self._write_lock:
                self._process.stdin.close()  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass
        self._wait_exit(deadline)

    def _wait_exit(self, deadline: float) -> None:
        try:
            self._process.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            self._kill()
        self._reader.join(5.0)
        self._finalizer.detach()

    def _kill(self) -> None:
        if self._process.poll() is None:
            try:
                self._process.kill()
            except OSError:
                pass
        self._process.wait()
        try:
            self._process.stdin.close()  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called or the server has exited."""
        with self._lock:
            return self._closing or self._eof

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._process.pid

    @property
    def returncode(self) -> Optional[int]:
        """The server's exit status once it has exited, else ``None``."""
        return self._process.poll()

    # ------------------------------------------------------------------ methods

    def kernel_info(self) -> KernelInfo:
        """``kernel.info``: name (``pykernel``), version, protocol_version, python_version, methods."""
        return KernelInfo.from_json(self.call("kernel.info"))

    def create_context(
        self,
        cwd: Optional[Union[str, "os.PathLike[str]"]] = None,
        isolation: Optional[str] = None,
        memory_limit_mb: Optional[int] = None,
        cpu_time_limit_s: Optional[float] = None,
    ) -> Context:
        """Creates an isolated context (its own globals and working directory).

        :param cwd: its working directory (relative paths resolve against the server's); default:
            the server's working directory. A directory that does not exist raises
            :class:`~pykernel.errors.InvalidParamsError`.
        :param isolation: ``"namespace"`` (a namespace in the server's interpreter: microseconds to
            create, shares ``sys.modules``) or ``"process"`` (a worker process of its own: killable,
            crash-proof, runs in parallel); default: the server's ``--isolation``.
        :param memory_limit_mb: process contexts only: address space (MiB) the worker may add to
            its size at creation; an allocation past it raises ``MemoryError`` in the run.
        :param cpu_time_limit_s: process contexts only: CPU seconds each run may use; a run past
            it is ended with its worker (status ``"timeout"``; the context is then dead).
        """
        params: Dict[str, Any] = {}
        if cwd is not None:
            params["cwd"] = os.fspath(cwd)
        if isolation is not None:
            params["isolation"] = isolation
        if memory_limit_mb is not None:
            params["memory_limit_mb"] = memory_limit_mb
        if cpu_time_limit_s is not None:
            params["cpu_time_limit_s"] = cpu_time_limit_s
        return Context.from_json(self.call("context.create", params))

    def restart_context(self, context: ContextLike) -> Context:
        """Gives a process context a fresh worker (same id, directory and isolation; empty
        namespace; execution count 0), e.g. after :class:`~pykernel.errors.ContextDeadError`.
        :class:`~pykernel.errors.InterpreterBusyError` while a run is in progress there."""
        return Context.from_json(self.call("context.restart", {"id": _context_id(context)}))

    def list_contexts(self) -> List[Context]:
        """Every context, ``default`` first."""
        return [Context.from_json(item) for item in self.call("context.list")["contexts"]]

    def delete_context(self, context: ContextLike) -> None:
        """Deletes a context (a :class:`Context` or its id): a run in progress there is interrupted,
        queued runs fail with :class:`~pykernel.errors.ContextDeletedError`.
        :class:`~pykernel.errors.ContextNotFoundError` when it does not exist,
        :class:`~pykernel.errors.DefaultContextUndeletableError` for ``default``."""
        self.call("context.delete", {"id": _context_id(context)})

    def run_code(
        self,
        code: str,
        context: Optional[ContextLike] = None,
        on_stdout: Optional[Callable[[OutputMessage], Any]] = None,
        on_stderr: Optional[Callable[[OutputMessage], Any]] = None,
        on_error: Optional[Callable[[ExecutionError], Any]] = None,
        envs: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        max_output_bytes: Optional[int] = None,
        on_result: Optional[Callable[[Result], Any]] = None,
        on_input: Optional[Callable[[str, bool], Optional[str]]] = None,
    ) -> ExecutionResult:
        """Runs Python code in a context and returns its :class:`ExecutionResult`.

        :param context: a :class:`Context` or context id; default: the shared ``default`` context.
        :param on_stdout: called with an :class:`OutputMessage` for each chunk of stdout as it is
            written (on the client's reader thread, before ``run_code`` returns).
        :param on_stderr: the same for stderr.
        :param on_error: called with the :class:`ExecutionError` when the run ends with one (an
            exception, a timeout or an interrupt), before ``run_code`` returns or raises.
        :param envs: environment variables set during this run only (the wire field ``env``).
        :param timeout: seconds the code may run; ``None``: the server's default (600); ``0``: no
            timeout. It counts from the run's start: time queued behind other runs (of this
            context, or of another namespace context) is not counted, so ``run_code`` may block
            for longer than ``timeout``.
        :param max_output_bytes: how much of stdout and of stderr the result keeps (server
            default 1 MiB each), and of each text representation of a rich result (its head
            and tail, joined by a line saying what was left out); the output callbacks receive
            everything.
        :param on_result: called with each rich :class:`Result` (``display()``, the last
            expression's value) as it is produced, in order with the output callbacks.
        :param on_input: answers the code's ``input()``, ``getpass.getpass()`` and ``sys.stdin``
            reads (the run is sent with ``allow_stdin``): called as ``on_input(prompt, password)``
            on a thread of its own (so it may block, e.g. to ask a person), once per line the code
            waits for; its return value (a ``str``) is the line. Returning ``None`` or raising an
            exception sends end of file (``EOFError`` in ``input()``). Returning anything else
            (``bytes`` included: decode them first) sends end of file too, and ``run_code``
            raises ``TypeError`` once the run has ended. Without it, the code's reads raise
            ``EOFError`` at once.

        An exception in the code is a result with ``status == "error"`` and ``error`` set. A run
        stopped by ``interrupt`` (or ``delete_context``, or ``close``) returns with status
        ``"interrupted"``. In a process context, a run whose worker died (a segfault, a kill)
        returns with status ``"crashed"`` (``error.name == "WorkerCrashed"``); later runs there
        raise :class:`~pykernel.errors.ContextDeadError` until ``restart_context``. A run that exceeded its timeout raises
        :class:`~pykernel.errors.PyKernelTimeoutError` (its ``.result`` holds the output
        printed before the stop). Protocol errors raise :class:`~pykernel.errors.PyKernelError`
        subclasses (e.g. :class:`~pykernel.errors.ContextNotFoundError`). An exception raised
        by a callback is re-raised here once the run has ended.
        """
        params: Dict[str, Any] = {"code": code}
        context_id = _context_id(context)
        if context_id is not None:
            params["context"] = context_id
        if envs is not None:
            params["env"] = dict(envs)
        if timeout is not None:
            params["timeout"] = timeout
        if max_output_bytes is not None:
            params["max_output_bytes"] = max_output_bytes
        if on_input is not None:
            params["allow_stdin"] = True

        refused_answers: List[TypeError] = []  # on_input's answers that were not a str
        on_notification: Optional[NotificationHandler] = None
        if on_stdout is not None or on_stderr is not None or on_result is not None or on_input is not None:

            def on_notification(method: str, note: Dict[str, Any]) -> None:
                if method == "code.input_request":
                    if on_input is not None:
                        self._answer_input(on_input, note, refused_answers)
                    return
                if method == "code.result":
                    if on_result is not None:
                        on_result(Result.from_json(note.get("result") or {}))
                    return
                if method != "code.output":
                    return
                stream = note.get("stream")
                callback = on_stdout if stream == "stdout" else on_stderr if stream == "stderr" else None
                if callback is not None:
                    callback(OutputMessage(output=note.get("text", ""), stream=stream))

        value = self._request(
            "code.run", params, on_notification=on_notification,
            interrupt_context=DEFAULT_CONTEXT if context_id is None else context_id,
        )
        if refused_answers:
            raise refused_answers[0]
        result = ExecutionResult.from_json(value)
        if result.error is not None and on_error is not None:
            on_error(result.error)
        if result.status == "timeout":
            detail = result.error.value if result.error is not None else "execution timed out"
            raise PyKernelTimeoutError(f"The run timed out: {detail}", result)
        return result

    def _answer_input(self, on_input: Callable[[str, bool], Optional[str]], note: Dict[str, Any],
                      refused: List[TypeError]) -> None:
        """Answers a ``code.input_request`` on a thread of its own (``on_input`` may block; the
        reader thread must not). An answer that is not a ``str`` is sent as end of file, and its
        ``TypeError`` added to ``refused`` (for ``run_code`` to raise)."""
        request_id = note.get("request_id")
        prompt, password = str(note.get("prompt", "")), bool(note.get("password", False))

        def answer() -> None:
            try:
                value = on_input(prompt, password)
            except BaseException:  # noqa: BLE001 -- any failure of the callable is end of file
                value = None
            if value is not None and not isinstance(value, str):
                refused.append(TypeError(
                    f"on_input returned {type(value).__name__}, not str: its return value is the line the code "
                    "reads (decode bytes to str first); the code was sent end of file"))
                value = None
            params: Dict[str, Any] = {"request_id": request_id}
            if value is None:
                params["eof"] = True
            else:
                params["value"] = value
            try:
                self.call("code.input", params)
            except PyKernelError:
                pass  # the run was stopped or ended meanwhile: nothing waits for this answer

        threading.Thread(target=answer, name="pykernel-input", daemon=True).start()

    def interrupt(self, context: Optional[ContextLike] = None) -> bool:
        """Interrupts the run in progress in a context (``KeyboardInterrupt`` where the code is;
        that run then returns with status ``"interrupted"``). Returns ``False`` when nothing was
        running there, or when the run's timeout stopped it already (it returns with status
        ``"timeout"``). Default: the ``default`` context."""
        context_id = _context_id(context)
        result = self.call("code.interrupt", {"context": DEFAULT_CONTEXT if context_id is None else context_id})
        return bool(result["interrupted"])

    # ------------------------------------------------------------------ generic access

    def call(
        self,
        method: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        on_notification: Optional[NotificationHandler] = None,
    ) -> Any:
        """Sends a request and returns its ``result``, for methods without a wrapper.

        :param on_notification: called as ``on_notification(method, params)`` on the reader thread
            for each notification the server sends about this request (``params.request_id``
            equal to its id), before this call returns.
        :raises PyKernelError: (a subclass for known codes) when the server answers an error.
        """
        return self._request(method, dict(params) if params is not None else None, on_notification=on_notification)

    def notify(self, method: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """Sends a JSON-RPC notification (no id): the server acts on it and never answers."""
        self._refuse_in_forked_child(f"PyKernel {method} notification")
        message: Dict[str, Any] = {"jsonrpc": _JSONRPC, "method": method}
        if params is not None:
            message["params"] = dict(params)
        with self._lock:
            if self._closing or self._eof:
                raise PyKernelConnectionError("The PyKernel client is closed.")
        self._write(self._encode(message))

    def add_notification_handler(self, method: str, handler: NotificationHandler) -> None:
        """Calls ``handler(method, params)`` on the reader thread for each notification named
        ``method`` that is not about one of this client's requests in flight."""
        with self._lock:
            self._handlers.setdefault(method, []).append(handler)

    @property
    def info(self) -> KernelInfo:
        """The ``kernel.info`` the server answered at start-up."""
        return self._info

    # ------------------------------------------------------------------ plumbing

    def _refuse_in_forked_child(self, what: str) -> None:
        if os.getpid() != self._owner_pid:
            raise PyKernelConnectionError(
                f"{what} was called in process {os.getpid()}, a fork of process {self._owner_pid}, which started "
                "this PyKernel: the server's answers go to that process's reader thread, so a forked child cannot "
                "use it; start a PyKernel in the child."
            )

    def _refuse_on_reader_thread(self, what: str) -> None:
        if threading.current_thread() is self._reader:
            raise RuntimeError(
                f"{what} was called from a PyKernel callback, which runs on the client's reader "
                "thread and would wait forever for a response only that thread can deliver; "
                "call it from another thread."
            )

    @staticmethod
    def _encode(message: Dict[str, Any]) -> bytes:
        """The line that sends ``message``; :class:`InvalidParamsError` for a value JSON cannot
        carry, :class:`InvalidRequestError` for a line longer than the server reads."""
        line = PyKernel._json_line(message)
        if len(line) - 1 > MAX_LINE_BYTES:
            raise InvalidRequestError(
                -32600,
                f"The request is {len(line) - 1} bytes long, more than the {MAX_LINE_BYTES} bytes "
                "a line may have.",
                {"max_line_bytes": MAX_LINE_BYTES},
            )
        return line

    @staticmethod
    def _json_line(message: Dict[str, Any]) -> bytes:
        try:
            text = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            return text.encode("utf-8") + b"\n"
        except UnicodeEncodeError:  # Lone surrogates: send them as \ud8xx escapes.
            return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("ascii") + b"\n"
        except ValueError as error:  # NaN or an infinity: JSON has none (the server could not tell whose line it was)
            field = _first_param(message, lambda value: not _finite(value))
            raise InvalidParamsError(
                -32602, f"{message.get('method')}: {'params.' + field if field else 'a parameter'} is not a finite number "
                f"({error}); JSON cannot carry NaN or infinities (a timeout of 0 means none)", _invalid_argument(field)) from None
        except TypeError as error:  # a value JSON has no form for: bytes (`run_code(b"...")`), a set, an object
            field = _first_param(message, lambda value: not _serializable(value))
            raise InvalidParamsError(
                -32602, f"{message.get('method')}: {'params.' + field if field else 'a parameter'} cannot be sent ({error}); "
                "JSON carries str, numbers, booleans, None, lists and dicts (decode bytes to str first)",
                _invalid_argument(field)) from None

    def _write(self, line: bytes) -> None:
        """Writes one whole line to the server's stdin. Never half of one: a line left unfinished
        would have the next request joined to it (the server answers the mixture ``-32700`` with
        no id, and that request's caller waits forever). A signal handler's exception (Ctrl-C)
        comes only on the main thread, and can come in the middle of a write; there a line
        longer than the pipe takes whole is written by a thread of its own, which finishes it
        (holding the write lock) whatever the main thread is then interrupted with."""
        if len(line) <= _ATOMIC_PIPE_WRITE or threading.current_thread() is not threading.main_thread():
            self._write_whole(line)
            return
        written = threading.Event()
        failure: List[BaseException] = []

        def write() -> None:
            try:
                self._write_whole(line)
            except BaseException as error:  # noqa: BLE001 -- raised by the caller below
                failure.append(error)
            finally:
                written.set()

        threading.Thread(target=write, name="pykernel-writer", daemon=True).start()
        written.wait()  # Ctrl-C here is raised at once; the line is still finished
        if failure:
            raise failure[0]

    def _write_whole(self, line: bytes) -> None:
        """Writes ``line`` with as many ``write`` calls as the pipe takes, holding the write lock
        (a line of up to ``_ATOMIC_PIPE_WRITE`` bytes goes in one call, whole or not at all)."""
        try:
            with self._write_lock:
                stdin = self._process.stdin
                assert stdin is not None
                fd = stdin.fileno()
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
        except (OSError, ValueError) as error:
            raise PyKernelConnectionError(
                f"Cannot write to pykernel serve (exit status {self._process.poll()}): {error}"
            ) from error

    def _request(
        self,
        method: str,
        params: Optional[Dict[str, Any]],
        *,
        on_notification: Optional[NotificationHandler] = None,
        wait: Optional[float] = None,
        closing: bool = False,
        interrupt_context: Optional[str] = None,
    ) -> Any:
        self._refuse_in_forked_child(f"PyKernel {method}")
        self._refuse_on_reader_thread(f"PyKernel {method}")
        request_id = next(self._ids)
        message: Dict[str, Any] = {"jsonrpc": _JSONRPC, "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        line = self._encode(message)  # a request refused here is never sent, so never in flight
        with self._lock:
            if self._eof:
                raise PyKernelConnectionError(
                    f"pykernel serve has exited (exit status {self._process.poll()}); start a new PyKernel."
                )
            if self._closing and not closing:
                raise PyKernelConnectionError("The PyKernel client is closed.")
            pending = _Pending(request_id, method, on_notification, interrupt_context)
            self._pending[request_id] = pending
        try:
            self._write(line)
            answered = pending.event.wait(wait)
        except KeyboardInterrupt:
            # Ctrl-C while waiting: stop the run too, instead of leaving it running unseen, unless
            # another thread's run in that context is in flight too (the interrupt would stop
            # the one in progress there, maybe that one: this run then goes on, its answer dropped).
            self._abandon(request_id)
            if interrupt_context is not None and not self._runs_in_flight_in(interrupt_context):
                self._interrupt_quietly(interrupt_context)
            raise
        except BaseException:
            self._abandon(request_id)
            raise
        if not answered:
            self._abandon(request_id)
            raise PyKernelConnectionError(f"pykernel serve did not answer {method} within {wait} s.")
        if pending.error is not None:
            raise pending.error
        if pending.callback_error is not None:
            raise pending.callback_error
        return pending.result

    def _abandon(self, request_id: int) -> None:
        with self._lock:
            if self._pending.pop(request_id, None) is not None:
                self._abandoned.add(request_id)

    def _runs_in_flight_in(self, context: str) -> bool:
        """Whether another ``code.run`` of this client in ``context`` awaits its answer."""
        with self._lock:
            return any(pending.run_context == context for pending in self._pending.values())

    def _interrupt_quietly(self, context: str) -> None:
        message = {"jsonrpc": _JSONRPC, "method": "code.interrupt", "params": {"context": context}}
        try:
            self._write(self._encode(message))
        except PyKernelError:
            pass

    @staticmethod
    def _read_loop(client_ref: "weakref.ref[PyKernel]", process: "subprocess.Popen[bytes]", exit_fd: int) -> None:
        """The reader thread. It holds the client only while it handles a line: a client the
        program dropped without ``close()`` is collected, and its finalizer stops the server,
        which ends this loop. The loop ends at the end of the server's stdout, or once the server
        has exited and its last output has been read (see ``_reads``); it then closes the
        server's stdout (nothing else reads it, so no read can race the close) and ``exit_fd``."""
        stdout = process.stdout
        assert stdout is not None
        try:
            for line in _lines(_reads(stdout.fileno(), exit_fd)):
                client = client_ref()
                if client is None:
                    return
                client._handle_line(line)
                del client
        except (OSError, ValueError):
            pass
        finally:
            stdout.close()
            os.close(exit_fd)
            client = client_ref()
            if client is not None:
                client._end_of_output()

    def _handle_line(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as error:  # RecursionError: nesting this Python cannot parse
            self._fail_unparsable(line, error)
            return
        if isinstance(message, dict):
            self._dispatch(message)
        else:
            self._warn(f"ignoring a message that is not an object: {line[:200]!r}")

    def _dispatch(self, message: Dict[str, Any]) -> None:
        if "id" in message and ("result" in message or "error" in message):
            request_id = message["id"]
            with self._lock:
                pending = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
                abandoned = isinstance(request_id, int) and request_id in self._abandoned
                if abandoned:
                    self._abandoned.discard(request_id)
            if pending is None:
                if not abandoned:
                    self._warn(f"response for no request in flight: {json.dumps(message)[:300]}")
                return
            if "error" in message:
                pending.error = error_from_response(message["error"])
            else:
                pending.result = message["result"]
            pending.event.set()
            return
        method = message.get("method")
        if not isinstance(method, str):
            self._warn(f"ignoring a message that is neither a response nor a notification: {json.dumps(message)[:300]}")
            return
        params = message.get("params")
        if not isinstance(params, dict):
            params = {}
        request_id = params.get("request_id")
        if request_id is not None:
            with self._lock:
                pending = self._pending.get(request_id) if isinstance(request_id, int) else None
            if pending is not None:
                # After a callback failed (re-raised once the run ends) the others are not called,
                # but a request for input is still answered: the run would wait for it forever.
                if pending.on_notification is not None and (pending.callback_error is None or method == "code.input_request"):
                    try:
                        pending.on_notification(method, params)
                    except BaseException as error:  # Re-raised by the waiting call.
                        pending.callback_error = error
                return
        with self._lock:
            handlers = list(self._handlers.get(method, ()))
        for handler in handlers:
            try:
                handler(method, params)
            except BaseException as error:  # noqa: B036 -- a handler's bug (even sys.exit) must not stop the reader
                self._warn(f"notification handler for {method} raised {error!r}")

    _RESPONSE_ID = re.compile(rb'^\{"jsonrpc":"2\.0","id":(\d+),')

    def _fail_unparsable(self, line: bytes, error: BaseException) -> None:
        """A line this Python cannot parse: the request it answers (the server writes the id
        first) fails with the reason, instead of waiting for an answer that came."""
        match = self._RESPONSE_ID.match(line)
        with self._lock:
            pending = self._pending.pop(int(match.group(1)), None) if match else None
        if pending is None:
            self._warn(f"ignoring a line that is not JSON this Python can parse ({error!r}): {line[:200]!r}")
            return
        pending.error = PyKernelError(None, f"The response to {pending.method} could not be parsed here: {error!r}")
        pending.event.set()

    def _end_of_output(self) -> None:
        with self._lock:
            self._eof = True
            pending = list(self._pending.values())
            self._pending.clear()
        status: Optional[int]
        try:
            status = self._process.wait(5)
        except subprocess.TimeoutExpired:
            status = None
        for request in pending:
            request.error = PyKernelConnectionError(
                f"pykernel serve exited (exit status {status}) before answering {request.method}."
            )
            request.event.set()

    @staticmethod
    def _warn(text: str) -> None:
        try:
            sys.stderr.write(f"pykernel client: {text}\n")
        except (OSError, ValueError):
            pass

