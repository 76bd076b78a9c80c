"""Top-level ``await`` in cells, as IPython runs it.

A cell is compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``; when it uses ``await``, ``async for``
or ``async with`` at its top level, its code is a coroutine's (``CO_COROUTINE``) and evaluating it
returns a coroutine. The engine hands that coroutine to ``run_cell`` with its context's event loop
(made by ``new_event_loop`` at the context's first such cell, closed by ``close_event_loop`` when
the context goes): tasks a cell created go on whenever a later cell of the context awaits.
Other code never comes here (and ``asyncio`` is imported only by the first such cell).

Stops. From such a cell on to its run's end, the engine's stop handler asks ``stop_landed`` where
a stop (interrupt, timeout) landed: in the code (the cell's, a task's, a callback's) it is raised
there, as in any run; in the loop's machinery (asyncio's code, the engine's, and the library code
they call) it is left to the loop, which delivers it by cancelling the cell's task (``_deliver``),
as ``asyncio.run`` delivers a Ctrl-C. An exception at an arbitrary line of asyncio can lose a
task's step (the task is never woken again: the loop then waits forever), or leave a task that
``create_task`` scheduled but did not return (it ran in a later cell's loop).
"""

import os
from types import TracebackType

_ENGINE_FILENAME_PREFIX = "<pykernel/"
# An exception's traceback as python3's C code reads and sets it, never through the attribute
# access its class may customise (a ``__getattribute__`` that raises).
_traceback_of = BaseException.__traceback__.__get__
_set_traceback = BaseException.__traceback__.__set__
# Python's own library (its packages' directories aside), where the code of the loop's machinery
# calls (``_weakrefset``, ``selectors``, ``logging``): a stop there belongs to its caller.
_LIBRARY = os.path.dirname(os.__file__) + os.sep
_PACKAGES = (_LIBRARY + "site-packages" + os.sep, _LIBRARY + "dist-packages" + os.sep)
_ASYNCIO = _LIBRARY + "asyncio" + os.sep

# The stops of the run whose cell is run, in order (``stop_landed``), and what came out of its loop
# while its task had not ended (a stop raised in another task's code, a callback's ``SystemExit``):
# a new list for each run, set by the engine (natively) before the first ``new_event_loop`` or
# ``run_cell`` of the run.
_stops = []
# The cell being run (``_Cell``), from the start of ``run_cell`` to its end.
_cell = None
# ``asyncio.current_task``, once ``asyncio`` is imported (``new_event_loop``).
_current_task = None


class _Cell:
    """A cell with top-level ``await`` being run: its loop, its coroutine and, once made, its
    task; how many of ``_stops`` were delivered; where the cell waited when the first was
    (``waiting``: a traceback, ``None`` for a cell whose code had not started), or ``_UNDELIVERED``;
    and the other tasks a stop was raised in, with the stop (``stopped_tasks``)."""

    __slots__ = ("loop", "coroutine", "task", "delivered", "waiting", "stopped_tasks")

    def __init__(self, loop, coroutine):
        self.loop = loop
        self.coroutine = coroutine
        self.task = None
        self.delivered = 0
        self.waiting = _UNDELIVERED
        self.stopped_tasks = []


_UNDELIVERED = object()


def new_event_loop():
    """A context's event loop (not made the thread's current one: ``asyncio.run()`` in a cell
    without top-level await works as in python3)."""
    import asyncio
    global _current_task, _HANDLE_RUN, _HANDLE_CALLS
    _current_task = asyncio.current_task
    if _HANDLE_RUN is None:
        _HANDLE_RUN = asyncio.events.Handle._run.__code__
        _HANDLE_CALLS = _first_call(_HANDLE_RUN)
    return asyncio.new_event_loop()


def run_cell(loop, coroutine):
    """Runs a cell's coroutine to its end on ``loop``: ``(value, None)``, or ``(None, exception)``
    with the exception's traceback starting at the cell's frame (no engine or asyncio frames).

    A stop (interrupt, timeout) or another exception that reaches the loop while the cell waits
    (in ``select``, or in another task) ends the cell as ``asyncio.run`` does on Ctrl-C: its task
    is cancelled and run until it finishes (its ``finally`` blocks and ``async with`` exits run);
    the stop is then reported where the cell waited, like a stop of ``time.sleep``. A stop that
    came before the cell's code started ends it with none of its code run."""
    global _cell
    cell = _cell = _Cell(loop, coroutine)
    try:
        return _run(cell)
    finally:
        _cell = None
        # A task the stop ended is not logged as one whose exception was never retrieved: the
        # cell reports the stop.
        for task, stop in cell.stopped_tasks:
            if task.done() and not task.cancelled() and task._exception is stop:
                task.exception()


def _with_user_traceback(error):
    """*error*, its traceback without the engine's frames (see _user_traceback)."""
    _set_traceback(error, _user_traceback(_traceback_of(error)))
    return error


def _run(cell):
    loop, coroutine = cell.loop, cell.coroutine
    if _stops:  # stopped as the engine began it: nothing of its code runs
        coroutine.close()
        return None, _stops[0]
    try:
        task = loop.create_task(coroutine)
    except BaseException as error:  # noqa: B036 -- raised by the code's task factory: reported
        coroutine.close()
        return None, _with_user_traceback(error)
    cell.task = task
    task.add_done_callback(_stop_loop)
    _deliver(cell)  # a stop as the task was made: cancelled before its code starts
    escaped = None  # what came out of the loop as the task ended (a stop in a callback the cell left)
    while not task.done():
        try:
            loop.run_forever()
        except BaseException as error:  # noqa: B036 -- a stop raised in code, a callback's exception: reported
            if task.done():
                escaped = error
            elif all(error is not stop for stop in _stops):
                _stops.append(error)
        else:
            if not task.done():  # the code stopped the loop (``loop.stop()``)
                _stops.append(RuntimeError("Event loop stopped before Future completed."))
        _deliver(cell)
    if task.cancelled() and cell.waiting is not _UNDELIVERED:
        return None, _stops[0].with_traceback(cell.waiting)
    # Its own outcome (also when it caught the cancellation and ended by itself). Retrieved: asyncio
    # does not log it as never retrieved.
    try:
        value = task.result()
    except BaseException as error:  # noqa: B036 -- the cell's exception, its CancelledError: reported
        return None, _with_user_traceback(error)
    if escaped is not None:
        return None, _with_user_traceback(escaped)
    return value, None


def stop_landed(frame, stop):
    """The engine's stop handler's question while a cell with top-level ``await`` runs (the
    runtime's ``stop_in_await_cell``): ``False`` to raise ``stop`` (an exception not raised yet)
    where the code is (``frame``), ``True`` when it is left to the loop.

    Raised in the cell's own task's code and what it calls (a loop between awaits), as in any run.
    In the loop's machinery it is recorded, and the loop delivers it (``_deliver``). In the code of
    another task or of a callback it is both: raised there (a task that does not await must end),
    and delivered to the cell."""
    cell = _cell
    if _in_code(frame):
        task = None if cell is None or cell.task is None else _current_task(cell.loop)
        if task is not None:
            if task is cell.task:
                return False
            cell.stopped_tasks.append((task, stop))
        left = False
    else:
        left = True
    _stops.append(stop)
    if cell is not None:
        cell.loop.call_soon_threadsafe(_deliver, cell)
    return left


def _in_code(frame):
    """Whether the innermost frame that is not Python's own library's is the code's, not the
    loop's machinery (asyncio's, or the engine's: this module's, a weak reference's callback of the
    runtime that the collector ran).

    The runtime's functions the code calls (``input``, the streams' reads and writes) count as
    their caller's: a cell waiting for input is not in the loop, which cannot deliver anything
    while the wait lasts. A callback the loop runs counts as code once ``Handle._run`` has called
    it (a C function or the library's: ``call_soon(time.sleep, 6)`` blocks the loop), not before
    (there the handle's step would be lost, as in the loop's own code)."""
    while frame is not None:
        code = frame.f_code
        if code is _HANDLE_RUN:
            return frame.f_lasti >= _HANDLE_CALLS
        filename = code.co_filename
        if filename.startswith(_ASYNCIO):
            return False
        if filename.startswith(_ENGINE_FILENAME_PREFIX):
            if filename == _THIS_FILE or code.co_name in _ENGINE_CALLBACKS:
                return False
        else:
            library = filename.startswith(_LIBRARY) and not filename.startswith(_PACKAGES)
            if not (library or filename.startswith("<frozen ")):
                return True
        frame = frame.f_back
    return False


_THIS_FILE = _in_code.__code__.co_filename
# The runtime's callbacks that the collector runs wherever it runs (``keep_cell_while_used``).
_ENGINE_CALLBACKS = frozenset({"forget"})


# The code of asyncio's ``Handle._run``, and the offset of its call of the handle's callback: set
# with ``_current_task`` (``new_event_loop``), before any cell with ``await`` runs.
_HANDLE_RUN = None
_HANDLE_CALLS = 0


def _first_call(code):
    """The offset of the first call instruction of ``code`` (``Handle._run`` calls its callback
    with ``*args``: ``CALL_FUNCTION_EX``)."""
    import dis
    calls = ("CALL", "CALL_FUNCTION_EX")
    return min(instruction.offset for instruction in dis.get_instructions(code) if instruction.opname in calls)


def _deliver(cell):
    """Delivers the stops recorded since the last delivery, in the loop or as ``run_cell`` goes
    on: each cancels the cell's task (a stop repeated meanwhile cancels again); the first notes
    where the cell waits, for the stop's traceback. A delivery to a cell that has ended does
    nothing (its callback may run in a later cell's loop)."""
    if cell is not _cell:
        return
    task = cell.task
    while cell.delivered < len(_stops):
        cell.delivered += 1
        if task.done():
            continue
        if cell.waiting is _UNDELIVERED:
            cell.waiting = _suspended_at(cell.coroutine) if cell.coroutine.cr_suspended else None
        task.cancel()


def _stop_loop(task):
    """The cell's task's done callback: stops the loop (once stale, for a task of an ended cell
    whose callback runs in a later cell's loop, does nothing)."""
    cell = _cell
    if cell is not None and cell.task is task:
        cell.loop.stop()


def close_event_loop(loop):
    """Closes a deleted context's loop. Its pending tasks are dropped without running again
    (their coroutines are closed when freed, so their ``finally`` blocks run); a deletion never
    waits for user code."""
    import asyncio
    for task in asyncio.all_tasks(loop):
        task._log_destroy_pending = False  # as asyncio's own run_until_complete does for its task
    loop.close()


def _user_traceback(tb):
    """The traceback without its leading frames of the engine and of asyncio (the loop that ran
    the cell), so it starts at the cell's frame as python3's starts at the program's."""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename.startswith(_ENGINE_FILENAME_PREFIX) or filename.startswith(_ASYNCIO)):
            break
        tb = tb.tb_next
    return tb


def _suspended_at(coroutine):
    """A traceback of where a suspended coroutine waits: its frame, then the frames of what it
    awaits, down to the innermost (a future has none)."""
    frames = []
    awaited = coroutine
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    tb = None
    for frame in reversed(frames):
        tb = TracebackType(tb, frame, frame.f_lasti, frame.f_lineno)
    return tb

