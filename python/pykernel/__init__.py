"""PyKernel client: run Python code in stateful, isolated contexts of a ``pykernel serve`` server.

::

    from pykernel import PyKernel

    with PyKernel() as kernel:                       # binary: argument, $PYKERNEL_BIN or PATH
        kernel.run_code("counter = 1")
        result = kernel.run_code("counter += 1\\nprint(counter)")
        print(result.stdout)                         # 2

        ctx = kernel.create_context(cwd="/tmp")
        kernel.run_code("import os; print(os.getcwd())", context=ctx,
                        on_stdout=lambda msg: print("[STDOUT]", msg.output, end=""))
        kernel.delete_context(ctx)

The protocol underneath is documented in ``docs/protocol.md`` of the PyKernel repository.
"""

from . import charts as _charts
from .charts import *  # noqa: F401,F403 -- the chart classes (charts.__all__)
from .client import DEFAULT_CONTEXT, MAX_LINE_BYTES, PyKernel
from . import errors as _errors
from .errors import *  # noqa: F401,F403 -- every exception the client raises (errors.__all__)
from .process import (
    CodeRunParams,
    Command,
    ExecuteResponse,
    PtyHandle,
    PtyInfo,
    PtySize,
    Session,
    SessionCommandLogsResponse,
    SessionExecuteRequest,
    SessionExecuteResponse,
    SessionExitedEvent,
)
from .types import Context, ExecutionError, ExecutionResult, ForkServer, IsolationInfo, KernelInfo, OutputMessage, Result, WorkerPool

__version__ = "0.1.0"

__all__ = [
    "PyKernel",
    "DEFAULT_CONTEXT",
    "MAX_LINE_BYTES",
    "Context",
    "ExecutionError",
    "ExecutionResult",
    "KernelInfo",
    "IsolationInfo",
    "WorkerPool",
    "ForkServer",
    "OutputMessage",
    "Result",
    "CodeRunParams",
    "Command",
    "ExecuteResponse",
    "PtyHandle",
    "PtyInfo",
    "PtySize",
    "Session",
    "SessionCommandLogsResponse",
    "SessionExecuteRequest",
    "SessionExecuteResponse",
    "SessionExitedEvent",
] + [name for name in _errors.__all__ if name != "error_from_response"] + [
    name for name in _charts.__all__ if name != "chart_from_json"]
