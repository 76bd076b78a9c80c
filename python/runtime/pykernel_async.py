"""Top-level ``await`` in cells, as IPython runs it.

A cell is compiled with ``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``; when it uses ``await``, ``async for``
or ``async with`` at its top level, its code is a coroutine's (``CO_COROUTINE``) and evaluating it
returns a coroutine. The engine hands that coroutine to ``run_cell`` with its context's event loop
(made by ``new_event_loop`` at the context's first such cell, closed by ``close_event_loop`` when
the context goes): tasks a cell created go on whenever a later cell of the context awaits.
Other code never comes here (and ``asyncio`` is imported only by the first such cell).
"""

import os
import sys
from types import TracebackType

_ENGINE_FILENAME_PREFIX = "<pykernel/"
_task = None  # the task of the cell being run (``run_cell``)


def new_event_loop():
    """A context's event loop (not made the thread's current one: ``asyncio.run()`` in a cell
    without top-level await works as in python3)."""
    import asyncio
    return asyncio.new_event_loop()


def run_cell(loop, coroutine):
    """Runs a cell's coroutine to its end on ``loop``: ``(value, None)``, or ``(None, exception)``
    with the exception's traceback starting at the cell's frame (no engine or asyncio frames).

    A stop (interrupt, timeout) or another exception that reaches the loop while the cell waits
    (in ``select``, or in another task) ends the cell as ``asyncio.run`` does on Ctrl-C: its task
    is cancelled and run until it finishes (its ``finally`` blocks and ``async with`` exits run);
    the stop is then reported where the cell waited, like a stop of ``time.sleep``.

    The loop is driven here, ``run_forever`` until the task's done callback stops it, not by
    ``run_until_complete``, whose own callback stayed queued when a stop came out of the loop after
    the task had ended and before that callback ran: it stopped a later cell's loop at once
    ("Event loop stopped before Future completed."). Ours does nothing for a cell that ended."""
    global _task
    task = _task = loop.create_task(coroutine)
    try:
        return _run(loop, coroutine, task)
    finally:
        _task = None


def _run(loop, coroutine, task):
    task.add_done_callback(_stop_loop)
    failure = escaped = None
    while not task.done():
        try:
            loop.run_forever()
        except BaseException as error:  # noqa: B036 -- the cell's exception, or a stop: reported
            if task.done():
                escaped = error  # as the task ended (a stop in a callback the cell left)
                break
            if failure is None:
                failure, waiting = error, _suspended_at(coroutine)
        else:
            if task.done():
                break
            if failure is None:  # the code stopped the loop (``loop.stop()``)
                failure = RuntimeError("Event loop stopped before Future completed.")
                waiting = _suspended_at(coroutine)
        task.cancel()  # a stop repeated meanwhile cancels again
    if task.cancelled() and failure is not None:
        return None, failure.with_traceback(waiting)
    # Its own outcome (also when it caught the cancellation and ended by itself). Retrieved: asyncio
    # does not log it as never retrieved.
    try:
        value = task.result()
    except BaseException as error:  # noqa: B036 -- the cell's exception, its CancelledError: reported
        return None, error.with_traceback(_user_traceback(error.__traceback__))
    if escaped is not None:
        return None, escaped.with_traceback(_user_traceback(escaped.__traceback__))
    return value, None


def _stop_loop(task):
    """The cell's task's done callback: stops the loop; for the task of a cell that has ended (its
    callback left in the loop by a stop), nothing."""
    if task is _task:
        task.get_loop().stop()


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
    asyncio_directory = os.path.dirname(sys.modules["asyncio"].__file__) + os.sep
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename.startswith(_ENGINE_FILENAME_PREFIX) or filename.startswith(asyncio_directory)):
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
