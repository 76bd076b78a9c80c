"""The values the client returns: contexts, run results, error records, output chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .charts import Chart, chart_from_json

__all__ = ["Context", "ExecutionError", "ExecutionResult", "OutputMessage", "KernelInfo", "Result", "IsolationInfo", "WorkerPool",
           "ForkServer"]


@dataclass(frozen=True)
class Context:
    """An isolated Python namespace of the server, with its own working directory.

    The ``default`` context always exists; ``run_code`` uses it when no context is given.
    """

    id: str
    language: str = "python"
    cwd: str = ""
    #: ``"namespace"`` (in the server's interpreter) or ``"process"`` (a worker process of its own).
    isolation: str = "namespace"
    #: ``"alive"``; for a process context also ``"starting"`` (created while no worker was ready:
    #: its worker is on the way, and runs sent meanwhile wait for it) or ``"dead"`` (its worker
    #: ended or could not start; see ``restart_context``).
    state: str = "alive"
    #: A process context's memory limit (MiB of address space its worker may add), when it has one.
    memory_limit_mb: Optional[int] = None
    #: A process context's CPU time limit per run (seconds), when it has one.
    cpu_time_limit_s: Optional[float] = None

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "Context":
        return cls(id=value["id"], language=value.get("language", "python"), cwd=value.get("cwd", ""),
                   isolation=value.get("isolation", "namespace"), state=value.get("state", "alive"),
                   memory_limit_mb=value.get("memory_limit_mb"), cpu_time_limit_s=value.get("cpu_time_limit_s"))


@dataclass(frozen=True)
class ExecutionError:
    """An exception raised by the user's code, as CPython prints it.

    ``name`` is the exception type as the standard traceback names it (``ZeroDivisionError``,
    ``json.decoder.JSONDecodeError``), ``value`` its ``str()``, ``traceback`` the full text
    ``python3 file.py`` would print (cells are named ``<cell-N>``). A stopped run has a record
    too: ``TimeoutError`` (status ``timeout``) or ``KeyboardInterrupt`` (status ``interrupted``).

    Past the run's ``max_output_bytes``, ``value`` keeps its start and ``traceback`` its head and
    tail (joined by a line saying how many bytes were left out): ``truncated`` is then true and
    ``value_omitted_bytes``/``traceback_omitted_bytes`` count the bytes cut from each.
    """

    name: str
    value: str
    traceback: str = ""
    truncated: bool = False
    value_omitted_bytes: int = 0
    traceback_omitted_bytes: int = 0

    @classmethod
    def from_json(cls, value: Optional[Dict[str, Any]]) -> Optional["ExecutionError"]:
        if value is None:
            return None
        return cls(name=value.get("name", ""), value=value.get("value", ""), traceback=value.get("traceback") or "",
                   truncated=bool(value.get("truncated", False)),
                   value_omitted_bytes=int(value.get("value_omitted_bytes", 0)),
                   traceback_omitted_bytes=int(value.get("traceback_omitted_bytes", 0)))


@dataclass(frozen=True)
class Result:
    """A rich result of a run: the value of the code's last expression (``is_main_result``) or
    an object passed to ``display()``, as a MIME bundle (the ``code.result`` notification).

    ``data`` maps MIME types to representations (``text/plain`` is always there); binary ones
    (``image/png``, ``image/jpeg``, ``application/pdf``) are base64 strings, ``application/json``
    a JSON value. The properties give the common ones (``None`` when absent); ``chart`` is the
    chart record of a matplotlib figure as a typed :class:`~pykernel.charts.Chart`
    (``result.chart.type``, ``.title``, ``.elements``, ...), or ``None``.
    """

    data: Dict[str, Any] = field(default_factory=dict)
    is_main_result: bool = False
    metadata: Dict[str, Any] = field(default_factory=dict)
    chart: Optional[Chart] = None

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "Result":
        return cls(data=dict(value.get("data") or {}), is_main_result=bool(value.get("is_main_result", False)),
                   metadata=dict(value.get("metadata") or {}),
                   chart=chart_from_json(value["chart"]) if value.get("chart") is not None else None)

    @property
    def text(self) -> Optional[str]:
        """``text/plain``: the value's ``repr``."""
        return self.data.get("text/plain")

    @property
    def html(self) -> Optional[str]:
        return self.data.get("text/html")

    @property
    def markdown(self) -> Optional[str]:
        return self.data.get("text/markdown")

    @property
    def svg(self) -> Optional[str]:
        return self.data.get("image/svg+xml")

    @property
    def png(self) -> Optional[str]:
        """The PNG image, base64-encoded."""
        return self.data.get("image/png")

    @property
    def jpeg(self) -> Optional[str]:
        """The JPEG image, base64-encoded."""
        return self.data.get("image/jpeg")

    @property
    def pdf(self) -> Optional[str]:
        return self.data.get("application/pdf")

    @property
    def latex(self) -> Optional[str]:
        return self.data.get("text/latex")

    @property
    def json(self) -> Any:
        return self.data.get("application/json")

    @property
    def javascript(self) -> Optional[str]:
        return self.data.get("application/javascript")

    def formats(self) -> List[str]:
        """The MIME types the result has."""
        return list(self.data)


@dataclass(frozen=True)
class ExecutionResult:
    """What a run produced.

    ``status`` is ``"ok"``, ``"error"`` (the code raised: see ``error``), ``"timeout"`` (raised as
    :class:`~pykernel.errors.PyKernelTimeoutError` by ``run_code``), ``"interrupted"`` or, in a
    process context, ``"crashed"`` (its worker died: the context's state is lost).
    ``stdout``/``stderr`` hold the output up to the run's ``max_output_bytes`` (default 1 MiB
    each): a longer stream keeps its first and last bytes, ``*_truncated`` tell whether it was cut
    and ``*_omitted_bytes`` how many bytes were cut between the head and the tail, and
    ``*_head_bytes`` how many bytes of the kept text come before the cut (the whole text's length
    when nothing was cut: see "Output limits" in ``docs/protocol.md``); the
    ``on_stdout``/``on_stderr`` callbacks receive every byte.
    ``duration`` is how long the code ran, in seconds. ``results`` holds the run's rich results in
    order (``display()``ed objects and the last expression's value); ``text`` is the main result's
    text.
    """

    stdout: str = ""
    stderr: str = ""
    error: Optional[ExecutionError] = None
    status: str = "ok"
    execution_count: int = 0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    stdout_omitted_bytes: int = 0
    stderr_omitted_bytes: int = 0
    stdout_head_bytes: int = 0
    stderr_head_bytes: int = 0
    duration: float = 0.0
    results: List[Result] = field(default_factory=list)

    @property
    def text(self) -> Optional[str]:
        """The main result's ``text/plain`` (the last expression's ``repr``), or ``None``."""
        for result in self.results:
            if result.is_main_result:
                return result.text
        return None

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "ExecutionResult":
        stdout, stderr = value.get("stdout", ""), value.get("stderr", "")
        return cls(
            stdout=stdout,
            stderr=stderr,
            error=ExecutionError.from_json(value.get("error")),
            status=value.get("status", ""),
            execution_count=value.get("execution_count", 0),
            stdout_truncated=bool(value.get("stdout_truncated", False)),
            stderr_truncated=bool(value.get("stderr_truncated", False)),
            stdout_omitted_bytes=int(value.get("stdout_omitted_bytes", 0)),
            stderr_omitted_bytes=int(value.get("stderr_omitted_bytes", 0)),
            # Only a stream that was cut carries its head's length: else the head is all of it.
            stdout_head_bytes=int(value.get("stdout_head_bytes", len(stdout.encode("utf-8")))),
            stderr_head_bytes=int(value.get("stderr_head_bytes", len(stderr.encode("utf-8")))),
            duration=float(value.get("duration", 0.0)),
            results=[Result.from_json(item) for item in value.get("results") or []],
        )


@dataclass(frozen=True)
class OutputMessage:
    """A chunk of a run's output, given to ``on_stdout``/``on_stderr`` as it arrives.

    ``output`` is the text (small writes are coalesced, so a chunk may hold several lines or part
    of one); ``stream`` is ``"stdout"`` or ``"stderr"``.
    """

    output: str
    stream: str = "stdout"

    @property
    def text(self) -> str:
        """The same as ``output`` (the protocol calls it ``text``)."""
        return self.output


@dataclass(frozen=True)
class WorkerPool:
    """``kernel.info``'s ``isolation.pool``: the workers kept started ahead of demand for new
    process contexts (``pykernel serve --pool-size``)."""

    size: int = 0
    #: Workers ready to be handed to a new process context.
    ready: int = 0
    #: Workers on the way.
    starting: int = 0
    #: How workers start: ``"fork"`` (forked by the fork server) or ``"spawn"`` (when no fork server can run).
    worker_start: str = "fork"

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "WorkerPool":
        return cls(size=value.get("size", 0), ready=value.get("ready", 0), starting=value.get("starting", 0),
                   worker_start=value.get("worker_start", "fork"))


@dataclass(frozen=True)
class ForkServer:
    """``kernel.info``'s ``isolation.fork_server``: the process that forks the workers."""

    pid: int
    ready: bool = False
    #: How many times it was restarted after it ended.
    restarts: int = 0

    @classmethod
    def from_json(cls, value: Optional[Dict[str, Any]]) -> Optional["ForkServer"]:
        if value is None:
            return None
        return cls(pid=value.get("pid", 0), ready=bool(value.get("ready", False)), restarts=value.get("restarts", 0))


@dataclass(frozen=True)
class IsolationInfo:
    """``kernel.info``'s ``isolation``: process contexts on the server."""

    #: The kind of context ``create_context`` makes without ``isolation`` (``pykernel serve --isolation``).
    default: str = "namespace"
    #: How many process contexts have a live worker.
    workers_alive: int = 0
    pool: WorkerPool = field(default_factory=WorkerPool)
    #: ``None`` while no fork server runs.
    fork_server: Optional[ForkServer] = None

    @classmethod
    def from_json(cls, value: Optional[Dict[str, Any]]) -> Optional["IsolationInfo"]:
        if value is None:
            return None
        return cls(default=value.get("default", "namespace"), workers_alive=value.get("workers_alive", 0),
                   pool=WorkerPool.from_json(value.get("pool") or {}), fork_server=ForkServer.from_json(value.get("fork_server")))


@dataclass(frozen=True)
class KernelInfo:
    """``kernel.info``: the server's name, versions, methods and process contexts."""

    name: str
    version: str
    protocol_version: int
    python_version: str
    methods: List[str] = field(default_factory=list)
    #: The server's process contexts (``None`` from a server that does not send it).
    isolation: Optional[IsolationInfo] = None

    @classmethod
    def from_json(cls, value: Dict[str, Any]) -> "KernelInfo":
        return cls(
            name=value.get("name", ""),
            version=value.get("version", ""),
            protocol_version=value.get("protocol_version", 0),
            python_version=value.get("python_version", ""),
            methods=list(value.get("methods", [])),
            isolation=IsolationInfo.from_json(value.get("isolation")),
        )
