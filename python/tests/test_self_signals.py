"""A served context's code that signals its own process (``os.kill(os.getpid(), ...)``, its
group, ``signal.raise_signal``): python3's behaviour for the run, never the end of the server
that every context shares."""
import os
import re
import subprocess
import time

import pytest
from pykernel import PyKernelTimeoutError

ISOLATIONS = ("namespace", "process")
PYTHON = "/usr/bin/python3.11"  # Debian's, the same stdlib as the embedded interpreter


@pytest.fixture(params=ISOLATIONS)
def ctx(request, module_kernel):
    context = module_kernel.create_context(isolation=request.param)
    yield context
    module_kernel.delete_context(context)


def _run(kernel, code, ctx):
    return kernel.run_code("import os, signal\n" + code, context=ctx, timeout=20)


def _still_serving(kernel, ctx):
    assert kernel.run_code("print('same context')", context=ctx).stdout == "same context\n"
    other = kernel.create_context()
    assert kernel.run_code("print('other context')", context=other).stdout == "other context\n"
    kernel.delete_context(other)


def test_sigint_to_itself_raises_keyboard_interrupt(module_kernel, ctx):
    result = _run(module_kernel, "os.kill(os.getpid(), signal.SIGINT)\nprint('not reached')", ctx)
    assert result.status == "error" and result.stdout == ""
    assert result.error.name == "KeyboardInterrupt"
    assert result.error.traceback.endswith("    os.kill(os.getpid(), signal.SIGINT)\nKeyboardInterrupt\n")
    _still_serving(module_kernel, ctx)


def test_os_exit_ends_the_run_and_its_note_says_which_process(module_kernel, ctx, request):
    """``os._exit`` in the run's thread ends the run (``SystemExit``, the context's state kept);
    the note names what the process is in this kind of context."""
    module_kernel.run_code("kept = 1", context=ctx)
    result = _run(module_kernel, "os._exit(3)\nprint('not reached')", ctx)
    assert (result.status, result.stdout, result.error.name, result.error.value) == ("error", "", "SystemExit", "3")
    process = ("here that process runs every context" if request.node.callspec.params["ctx"] == "namespace"
               else "here that process is the context's worker")
    assert result.error.traceback.endswith(
        f"SystemExit: 3\nos._exit(3) ends the whole process in python3; {process}, so PyKernel ended this run "
        "instead (the context keeps its state).\n")
    assert module_kernel.run_code("print(kept)", context=ctx).stdout == "1\n"


def test_os_exit_in_another_thread_ends_that_thread(module_kernel, ctx):
    """From a thread of its own, the code's ``os._exit`` ends that thread; its traceback (no
    frame of the engine's) says so, and the run goes on."""
    result = _run(module_kernel, "import threading\nt = threading.Thread(target=os._exit, args=(5,))\n"
                                 "t.start()\nt.join()\nprint('after')", ctx)
    assert (result.status, result.stdout) == ("ok", "after\n")
    assert result.stderr.startswith("Exception in thread Thread-")
    assert "pykernel" not in result.stderr
    assert result.stderr.endswith("SystemExit: 5\nos._exit(5) ends the whole process in python3; "
                                  "PyKernel ended only the calling thread instead.\n")


@pytest.fixture
def namespace_ctx(module_kernel):
    context = module_kernel.create_context()
    yield context
    module_kernel.delete_context(context)


@pytest.mark.parametrize("code, status, call", [
    ("os.kill(os.getpid(), signal.SIGTERM)", 143, "os.kill({pid}, 15)"),
    ("os.kill(0, signal.SIGTERM)", 143, "os.kill(0, 15)"),
    ("os.killpg(os.getpgrp(), signal.SIGHUP)", 129, "os.killpg({pgrp}, 1)"),
    ("signal.raise_signal(signal.SIGQUIT)", 131, "signal.raise_signal(3)"),
    ("os.kill(os.getpid(), signal.SIGKILL)", 137, "os.kill({pid}, 9)"),
    # Through a thread of the process, or a pidfd of it (they ended or shut down the server).
    ("signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)", 138, "signal.pthread_kill({tid}, 10)"),
    ("signal.pthread_kill(threading.main_thread().ident, signal.SIGSTOP)", 147, "signal.pthread_kill({main}, 19)"),
    ("signal.pidfd_send_signal(os.pidfd_open(os.getpid()), signal.SIGHUP)", 129, "signal.pidfd_send_signal({pidfd}, 1)"),
])
def test_signals_that_would_end_the_process_end_the_run(module_kernel, namespace_ctx, code, status, call):
    """In the process every namespace context shares."""
    ctx = namespace_ctx
    ids = module_kernel.run_code("import os, threading\nprint(os.getpid(), os.getpgrp(), threading.get_ident(), "
                                 "threading.main_thread().ident)", context=ctx).stdout.split()
    result = _run(module_kernel, "import threading\n" + code + "\nprint('not reached')", ctx)
    assert result.status == "error" and result.stdout == ""
    assert (result.error.name, result.error.value) == ("SystemExit", str(status))
    pidfd = re.search(r"pidfd_send_signal\((\d+)", result.error.traceback)
    expected_call = call.format(pid=ids[0], pgrp=ids[1], tid=ids[2], main=ids[3], pidfd=pidfd and pidfd.group(1))
    verb = "stops" if status == 147 else "ends"
    assert result.error.traceback.endswith(
        f"SystemExit: {status}\n{expected_call} {verb} the whole process in python3; here that process runs every "
        "context, so PyKernel ended this run instead (the context keeps its state).\n"), result.error.traceback
    _still_serving(module_kernel, ctx)


def test_pthread_kill_names_only_python_threads_in_the_shared_process(module_kernel, namespace_ctx):
    # glibc takes any number as a thread's address: a made-up one crashed the server.
    result = _run(module_kernel, "import signal\nsignal.pthread_kill(123456789, 0)", namespace_ctx)
    assert (result.error.name, result.error.value) == (
        "ProcessLookupError", "[Errno 3] No such process: 123456789 is not a live Python thread")
    delivered = _run(module_kernel, "import signal, threading\nsignal.pthread_kill(threading.get_ident(), 0)\nprint('ok')",
                     namespace_ctx)
    assert delivered.stdout == "ok\n"
    _still_serving(module_kernel, namespace_ctx)


def test_harmless_and_handled_signals_are_delivered(module_kernel, ctx):
    code = (
        "got = []\n"
        "signal.signal(signal.SIGUSR1, lambda number, frame: got.append(number))\n"
        "os.kill(os.getpid(), signal.SIGUSR1)\n"
        "os.kill(os.getpid(), 0)\n"
        "os.kill(os.getpid(), signal.SIGWINCH)\n"
        "signal.signal(signal.SIGUSR2, signal.SIG_IGN)\n"
        "os.kill(os.getpid(), signal.SIGUSR2)\n"
        "signal.signal(signal.SIGUSR2, signal.SIG_DFL)\n"
        "import time\n"
        "deadline = time.monotonic() + 10\n"
        "while not got and time.monotonic() < deadline:\n"
        "    time.sleep(0.001)\n"
        "print(got == [signal.SIGUSR1])\n"
    )
    result = _run(module_kernel, code, ctx)
    assert (result.status, result.stdout) == ("ok", "True\n"), result.error
    _still_serving(module_kernel, ctx)


def test_the_codes_handler_runs_before_its_next_statement_each_time(module_kernel, ctx):
    """As python3, where the signal is delivered to the calling thread as `os.kill` returns (one
    handler call per signal, none lost). In the shared process the kernel delivered it to another
    thread: the handler ran statements later, and signals sent meanwhile were merged (24 calls for
    300 signals)."""
    code = (
        "import threading\ngot = []\nsignal.signal(signal.SIGUSR1, lambda number, frame: got.append(number))\n"
        "stop = threading.Event()\nthreading.Thread(target=stop.wait).start()\nmissed = 0\n"
        "for i in range(300):\n    os.kill(os.getpid(), signal.SIGUSR1)\n    missed += len(got) != i + 1\n"
        "stop.set()\nprint(missed, len(got))\n")
    for _ in range(3):
        result = _run(module_kernel, code, ctx)
        assert (result.status, result.stdout) == ("ok", "0 300\n"), result


@pytest.mark.parametrize("code, name", [
    ("os.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
    ("os.kill(os.getpid(), signal.SIGTERM)", "SIGTERM"),
    ("os.kill(0, signal.SIGTERM)", "SIGTERM"),
    ("signal.raise_signal(signal.SIGTERM)", "SIGTERM"),
    ("os.killpg(os.getpgrp(), signal.SIGHUP)", "SIGHUP"),
    ("os.kill(os.getpid(), signal.SIGUSR1)", "SIGUSR1"),
])
def test_in_a_process_context_they_reach_its_own_process(module_kernel, code, name):
    """A process context's worker is its own process: a signal whose default action ends
    python3's process ends it, and the context alone is crashed (as documented for process
    contexts). SIGTERM used to start the worker's graceful shutdown instead: the run was answered
    `interrupted` or `ok`, then every later run `shutting_down` while the context stayed alive.
    What the code wrote before, as python3 flushed it, comes with the answer (it was lost)."""
    context = module_kernel.create_context(isolation="process")
    try:
        written = "print('before', flush=True)\nos.write(1, b'raw\\n')\n"
        result = _run(module_kernel, written + code + "\nprint('still running')", context)
        assert result.status == "crashed" and f"({name})" in result.error.value, result.error
        assert result.stdout == "before\nraw\n"
        assert [c.state for c in module_kernel.list_contexts() if c.id == context.id] == ["dead"]
        other = module_kernel.create_context()
        assert module_kernel.run_code("print('other context')", context=other).stdout == "other context\n"
        module_kernel.delete_context(other)
    finally:
        module_kernel.delete_context(context)


@pytest.mark.parametrize("from_outside", ["SIGTERM", "SIGHUP"])
def test_code_handlers_for_sigterm_and_sigint_leave_the_hosts_handling(pykernel_bin, from_outside):
    """In the process namespace contexts share, a handler the code sets for SIGTERM, SIGINT or
    SIGHUP runs when the code signals itself, but a SIGTERM from outside still shuts the server
    down (it used to be ignored for good after `signal.signal(signal.SIGTERM, signal.SIG_IGN)`),
    and so does a SIGHUP (the server's shutdown signal too; it ended the server at once)."""
    import signal as host_signal

    from pykernel import PyKernel

    client = PyKernel(pykernel_bin)
    try:
        code = (
            "import os, signal, time\n"
            "got = []\n"
            "for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
            "    signal.signal(number, lambda n, frame: got.append(n))\n"
            "    os.kill(os.getpid(), number)\n"
            "deadline = time.monotonic() + 10\n"
            "while len(got) < 3 and time.monotonic() < deadline:\n"
            "    time.sleep(0.001)\n"
            "print(got == [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL)\n"
            "for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n"
            "    signal.signal(number, signal.SIG_IGN)\n"
        )
        result = client.run_code(code, timeout=20)
        assert (result.status, result.stdout) == ("ok", "True True\n"), result.error
        client._process.send_signal(getattr(host_signal, from_outside))
        assert client._process.wait(timeout=20) == 0
    finally:
        client.close()


IGNORE_EVERY_SIGNAL = ("import signal\nfor n in signal.valid_signals():\n    try:\n        signal.signal(n, signal.SIG_IGN)\n"
                       "    except (OSError, ValueError, RuntimeError):\n        pass\n"
                       "print(repr(signal.getsignal(signal.SIGRTMIN + 3)), signal.getsignal(signal.SIGPIPE))\n")


def _interrupt_once_it_prints(kernel, code, ctx):
    """Runs ``code``, interrupting it once it printed ``go`` (from the client's reader thread)."""
    import threading

    printed = threading.Event()

    def on_stdout(message):
        if "go" in message.output:
            printed.set()

    interrupter = threading.Thread(target=lambda: printed.wait(20) and kernel.interrupt(ctx))
    interrupter.start()
    try:
        return kernel.run_code(code, context=ctx, on_stdout=on_stdout, timeout=20)
    finally:
        interrupter.join()


def test_an_interrupt_calls_the_codes_sigint_handler_as_ctrl_c_does(module_kernel, ctx):
    """python3's Ctrl-C calls the handler the code set for SIGINT; an interrupt raised
    ``KeyboardInterrupt`` past it. The run is still interrupted (its first stop decides)."""
    result = _interrupt_once_it_prints(module_kernel, (
        "import signal, time\nasked = []\n"
        "signal.signal(signal.SIGINT, lambda number, frame: asked.append(number))\n"
        "print('go', flush=True)\n"
        "while not asked:\n    time.sleep(0.005)\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "print('stopped gracefully', asked == [signal.SIGINT])"), ctx)
    assert result.status == "interrupted"
    assert result.stdout == "go\nstopped gracefully True\n"
    _still_serving(module_kernel, ctx)


def test_an_interrupted_asyncio_run_cancels_its_tasks_as_python3(module_kernel, ctx):
    """``asyncio.run`` handles SIGINT itself: the main task is cancelled, every task's
    ``finally`` runs, then ``KeyboardInterrupt`` with python3's traceback. Raised past its handler,
    the interrupt broke the loop: tasks were lost, their ``finally`` ran in later runs."""
    result = _interrupt_once_it_prints(module_kernel, (
        "import asyncio\ncleaned = []\n"
        "async def work(i):\n    try:\n        await asyncio.sleep(100)\n    finally:\n        cleaned.append(i)\n"
        "async def main():\n    tasks = [asyncio.create_task(work(i)) for i in range(20)]\n"
        "    await asyncio.sleep(0)\n    print('go', flush=True)\n    await asyncio.gather(*tasks)\n"
        "asyncio.run(main())"), ctx)
    assert result.status == "interrupted" and result.error.name == "KeyboardInterrupt"
    assert result.error.traceback.endswith(
        '  File "/usr/lib/python3.11/asyncio/runners.py", line 123, in run\n'
        "    raise KeyboardInterrupt()\nKeyboardInterrupt\n"), result.error.traceback
    assert module_kernel.run_code("print(sorted(cleaned) == list(range(20)))", context=ctx).stdout == "True\n"


def test_a_sigint_handler_that_does_not_end_the_run_gets_one_interrupt(module_kernel, ctx):
    """The code's handler is called for the run's first interrupt only: the repeats of an
    interrupt the code did not end on raise ``KeyboardInterrupt`` (the engine stays in charge)."""
    result = _interrupt_once_it_prints(module_kernel, (
        "import signal, time\ncalls = []\n"
        "signal.signal(signal.SIGINT, lambda number, frame: calls.append(number))\n"
        "print('go', flush=True)\n"
        "try:\n    time.sleep(30)\nfinally:\n"
        "    signal.signal(signal.SIGINT, signal.default_int_handler)\n    print('calls', len(calls))"), ctx)
    assert result.status == "interrupted" and result.error.name == "KeyboardInterrupt"
    assert result.stdout == "go\ncalls 1\n"
    assert "    time.sleep(30)\nKeyboardInterrupt\n" in result.error.traceback


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_code_that_ignores_every_signal_is_still_stopped(kernel, isolation):
    """The engine's stop signal (SIGRTMIN+3) stays the engine's: before, ignoring every signal left
    later loops unstoppable, and the interpreter every namespace context shares busy for good."""
    ctx = kernel.create_context(isolation=isolation)
    assert kernel.run_code(IGNORE_EVERY_SIGNAL, context=ctx).stdout == "<Handlers.SIG_IGN: 1> 1\n"  # str() of 3.11's IntEnum is its number
    for code in ("while True: pass", "import time\ntime.sleep(30)"):
        with pytest.raises(PyKernelTimeoutError) as caught:
            kernel.run_code(code, context=ctx, timeout=0.5)
        result = caught.value.result
        assert result.error.traceback.startswith('Traceback (most recent call last):\n  File "<cell-'), result.error
    assert kernel.run_code("print('free')", context=ctx).stdout == "free\n"
    assert kernel.run_code("print('free')").stdout == "free\n"


def test_the_codes_handler_of_the_stop_signal_is_called_when_it_signals_itself(kernel):
    """What python3 prints; the engine's handler stays in place (a loop is still stopped)."""
    code = ("import os, signal\nn = signal.SIGRTMIN + 3\nprint(signal.getsignal(n))\nseen = []\n"
            "print(signal.signal(n, lambda s, f: seen.append((s, f.f_code.co_name))))\n"
            "print(callable(signal.getsignal(n)))\nos.kill(os.getpid(), n)\nprint(seen == [(n, '<module>')])\n"
            "print(signal.signal(n, signal.SIG_IGN) is not None, signal.getsignal(n))\n")
    expected = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert expected == "0\n0\nTrue\nTrue\nTrue 1\n"
    assert kernel.run_code(code).stdout == expected
    with pytest.raises(PyKernelTimeoutError) as caught:
        kernel.run_code("while True: pass", timeout=0.3)
    assert "grace period" not in caught.value.result.error.traceback


def test_host_signals_keep_the_hosts_action(kernel):
    """SIGPIPE at its default would end the process every context shares at a write to a closed
    pipe (python3 dies there); SIGCHLD ignored would lose the statuses of every child. The code's
    setting goes into Python's table only."""
    setting = ("import signal\nsignal.signal(signal.SIGPIPE, signal.SIG_DFL)\nsignal.signal(signal.SIGCHLD, signal.SIG_IGN)\n"
               "print(signal.getsignal(signal.SIGPIPE), signal.getsignal(signal.SIGCHLD))")
    assert kernel.run_code(setting).stdout == "0 1\n"
    result = kernel.run_code("import subprocess\np = subprocess.Popen(['true'], stdin=subprocess.PIPE)\np.wait()\n"
                             "p.stdin.write(b'x' * 1000000)\np.stdin.flush()")
    assert result.status == "error" and result.error.name == "BrokenPipeError", result
    assert kernel.run_code("import subprocess\nprint(subprocess.run(['sh', '-c', 'exit 3']).returncode)").stdout == "3\n"


MASKS = ("import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n"
         "m = signal.pthread_sigmask(signal.SIG_BLOCK, [])\nprint(signal.SIGRTMIN + 3 in m, signal.SIGUSR1 in m)\n"
         "signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGRTMIN + 3])\n"
         "m = signal.pthread_sigmask(signal.SIG_SETMASK, [])\n"
         "print(signal.SIGRTMIN + 3 in m, signal.SIGUSR1 in m, len(signal.pthread_sigmask(signal.SIG_BLOCK, [])))\n")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_code_that_blocks_every_signal_is_still_stopped_in_a_sleep(kernel, isolation):
    """The code's mask never holds the stop signal back on the interpreter thread (it reports
    what the code set, as python3's): before, a sleep after blocking every signal could not be
    stopped, and the interpreter every namespace context shares stayed busy until it ended."""
    expected = subprocess.run([PYTHON, "-c", MASKS], capture_output=True, text=True, check=True).stdout
    assert expected == "True True\nFalse True 0\n"
    ctx = kernel.create_context(isolation=isolation)
    assert kernel.run_code(MASKS, context=ctx).stdout == expected
    kernel.run_code("import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())", context=ctx)
    with pytest.raises(PyKernelTimeoutError) as caught:
        kernel.run_code("import time\ntime.sleep(30)", context=ctx, timeout=0.5)
    assert caught.value.result.error.traceback.endswith("    time.sleep(30)\nTimeoutError: execution exceeded the 0.5 s timeout\n")
    assert kernel.run_code("print(signal.SIGRTMIN + 3 in signal.pthread_sigmask(signal.SIG_SETMASK, []))", context=ctx).stdout == "True\n"
    assert kernel.run_code("print('free')").stdout == "free\n"


INVALID_SIGNALS = ("import signal, _signal, warnings\n"
                   "old = signal.pthread_sigmask(signal.SIG_BLOCK, range(1, signal.NSIG))\n"
                   "signal.pthread_sigmask(signal.SIG_SETMASK, old)\n"
                   "_signal.pthread_sigmask(signal.SIG_BLOCK, [33, 32])\n"
                   "try:\n"
                   "    signal.pthread_sigmask(signal.SIG_BLOCK, [32, 0, 33])\n"
                   "except ValueError as e:\n"
                   "    print(e)\n"
                   "warnings.simplefilter('error')\n"
                   "try:\n"
                   "    _signal.pthread_sigmask(signal.SIG_BLOCK, [1, 32])\n"
                   "except RuntimeWarning as e:\n"
                   "    print('raised', e)\n"
                   "print(sorted(_signal.pthread_sigmask(signal.SIG_SETMASK, [])))\n")


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_mask_naming_signals_the_c_library_cannot_hold_warns_from_the_callers_line(kernel, isolation, tmp_path):
    """`pthread_sigmask(SIG_BLOCK, range(1, NSIG))`, as daemons write it: python3 warns of 32 and 33
    from signal.py's line (or the code's), with that line. The engine's guard was the line warned
    from: `<pykernel/pykernel_runtime.py>:2409`, no source line."""
    program = tmp_path / "prog.py"
    program.write_text(INVALID_SIGNALS)
    expected = subprocess.run([PYTHON, str(program)], capture_output=True, text=True, check=True)
    assert expected.stderr.count("RuntimeWarning: invalid signal number") == 4, expected.stderr  # the rest once a location
    ctx = kernel.create_context(isolation=isolation)
    ran = kernel.run_code(INVALID_SIGNALS, context=ctx)
    cell = re.search(r"<cell-\d+>", ran.stderr).group(0)
    assert (ran.stdout, ran.stderr.replace(cell, str(program))) == (expected.stdout, expected.stderr)


def test_a_read_is_still_stopped_after_siginterrupt_false(kernel):
    """`SA_RESTART` on the stop signal would make a read on a pipe go on after it (unstoppable)."""
    assert kernel.run_code("import signal\nprint(signal.siginterrupt(signal.SIGRTMIN + 3, False))").stdout == "None\n"
    with pytest.raises(PyKernelTimeoutError) as caught:
        kernel.run_code("import os\nr, w = os.pipe()\nos.read(r, 1)", timeout=0.5)
    assert caught.value.result.error.traceback.endswith("    os.read(r, 1)\nTimeoutError: execution exceeded the 0.5 s timeout\n")
    assert kernel.run_code("print('free')").stdout == "free\n"


CLOSE_EVERYTHING = ("import os\nos.closerange(3, 1 << 16)\nfor fd in range(3, 1024):\n    try:\n        os.close(fd)\n"
                    "    except OSError:\n        pass\nprint('closed')\n")


def test_code_that_closes_every_descriptor_leaves_the_server_serving(kernel):
    """`os.closerange(3, ...)`, as daemons and sandboxes do: before, the server lost its protocol
    output (it could answer nothing more). The engine's descriptors are spared; the code's own
    files are closed, as python3 closes them."""
    code = "f = open('/dev/null')\n" + CLOSE_EVERYTHING + "import os\nos.write(1, b'fd 1\\n')\nprint(f.closed)\ntry:\n    f.read()\nexcept OSError as e:\n    print(e.errno)"
    for isolation in ISOLATIONS:
        ctx = kernel.create_context(isolation=isolation)
        assert kernel.run_code(code, context=ctx, timeout=20).stdout == "closed\nfd 1\nFalse\n9\n"
        assert kernel.run_code("print('same context')", context=ctx).stdout == "same context\n"
    assert kernel.run_code("print('default')").stdout == "default\n"
    reply = kernel.call("process.exec", {"command": "echo shell"})
    assert reply["stdout"] == "shell\n" and reply["exit_code"] == 0, reply


def _cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_closing_or_redirecting_descriptors_1_and_2_lasts_only_for_the_run(module_kernel, ctx, tmp_path):
    """`os.dup2(f, 1)`, `os.close(1)`, `os.close(2)`: python3's behaviour for the rest of the run
    (its descriptor writes go to the file, or fail), and the next run, of this context or any
    other, has descriptors 1 and 2 on the output capture again. Before, the capture pipe left
    without a writer read a hang-up forever (the server, or the worker, spun a processor) and
    every later run's subprocess output was lost, or went into the first run's file."""
    target = tmp_path / "redirected.txt"
    code = (f"f = open({str(target)!r}, 'w')\nos.dup2(f.fileno(), 1)\nos.system('echo into the file')\n"
            "os.close(1)\nos.close(2)\nos.system('echo lost; echo lost >&2')\nprint('print still works')")
    result = _run(module_kernel, code, ctx)
    assert (result.status, result.stdout, result.stderr) == ("ok", "print still works\n", ""), result
    assert target.read_text() == "into the file\n"
    pid = int(module_kernel.run_code("import os; print(os.getpid())", context=ctx).stdout)
    before = _cpu_seconds(pid)
    time.sleep(0.5)
    assert _cpu_seconds(pid) - before < 0.1, "the output capture spins on a pipe without a writer"
    later = "import os\nos.system('echo out; echo err >&2')\nos.write(1, b'fd 1\\n')"
    result = _run(module_kernel, later, ctx)
    assert (result.stdout, result.stderr) == ("out\nfd 1\n", "err\n"), result
    other = module_kernel.create_context()
    result = module_kernel.run_code(later, context=other, timeout=20)
    assert (result.stdout, result.stderr) == ("out\nfd 1\n", "err\n"), result
    module_kernel.delete_context(other)
    assert target.read_text() == "into the file\n"


@pytest.mark.parametrize("closing", ["os.close(1)\nos.system('true')", "os.close(2)\nos.system('true')",
                                     "os.close(0)", "os.close(0)\nos.close(1)\nos.system('true')"])
def test_descriptors_0_1_2_closed_before_a_process_starts_are_back_for_the_next_run(module_kernel, ctx, closing):
    """A run that closes descriptor 1 and then starts a process: the pipe the engine made for
    that process's stderr took number 1, which could not be put back on the capture (every later
    run's descriptor writes failed: a read end); descriptor 0 closed stayed closed (later
    subprocesses read a closed stdin instead of /dev/null)."""
    assert _run(module_kernel, "import os\n" + closing, ctx).status == "ok"
    later = "import os, subprocess\nsubprocess.run('echo out; echo err >&2; cat', shell=True)\nos.write(1, b'fd 1\\n')"
    result = _run(module_kernel, later, ctx)
    assert (result.status, result.stdout, result.stderr) == ("ok", "out\nfd 1\n", "err\n"), result
    other = module_kernel.create_context()
    result = module_kernel.run_code(later, context=other, timeout=20)
    module_kernel.delete_context(other)
    assert (result.status, result.stdout, result.stderr) == ("ok", "out\nfd 1\n", "err\n"), result


def test_descriptors_the_server_opens_while_serving_are_spared(kernel):
    """A process context's worker channel and a running session command's pipes, made after
    set-up: a namespace context's `os.closerange(3, ...)` (or `os.close`, `os.dup2`) over them
    ended the worker and left the server hanging on the command."""
    ctx = kernel.create_context(isolation="process")
    assert kernel.run_code("print('worker')", context=ctx).stdout == "worker\n"
    kernel.create_session("spared")
    command = kernel.execute_session_command("spared", "echo start; read x; echo got $x", run_async=True)
    code = ("import os\nfor fd in sorted(int(n) for n in os.listdir('/proc/self/fd') if int(n) > 2):\n"
            "    try:\n        os.dup2(0, fd)\n    except OSError:\n        pass\n" + CLOSE_EVERYTHING)
    assert kernel.run_code(code, timeout=20).stdout == "closed\n"
    assert kernel.run_code("print('same worker')", context=ctx).stdout == "same worker\n"
    kernel.send_session_command_input("spared", command.cmd_id, "input\n")
    logs = kernel.get_session_command_logs("spared", command.cmd_id, on_stdout=lambda text: None)
    assert (logs.stdout, logs.exit_code) == ("start\ngot input\n", 0), logs
    reply = kernel.call("process.exec", {"command": "echo shell"})
    assert reply["stdout"] == "shell\n" and reply["exit_code"] == 0, reply


def test_set_blocking_and_fdopen_spare_the_servers_descriptors(kernel):
    """`os.set_blocking(fd, False)` on the server's protocol made it read end-of-input (it
    exited); `os.fdopen(fd).close()` closed it. Both fail with EBADF on the engine's descriptors
    and work on the code's own."""
    code = ("import os\nfor fd in sorted(int(n) for n in os.listdir('/proc/self/fd') if int(n) > 2):\n    try:\n"
            "        os.set_blocking(fd, False)\n        os.fdopen(fd).close()\n    except OSError:\n        pass\n"
            "r, w = os.pipe()\nos.set_blocking(r, False)\nprint(os.get_blocking(r))\nos.fdopen(r).close()\nos.close(w)\nprint('done')")
    for isolation in ISOLATIONS:
        ctx = kernel.create_context(isolation=isolation)
        assert kernel.run_code(code, context=ctx, timeout=20).stdout == "False\ndone\n"
        _still_serving(kernel, ctx)


def test_reads_and_writes_spare_the_servers_descriptors(kernel):
    """`os.write` on the number of the server's protocol output (a stale number the code's file
    once had) put lines into the protocol; `os.read` on its input took requests. The engine's
    descriptors are not open for them (EBADF), and the code's own work as in python3."""
    protocol = os.fstat(kernel._process.stdout.fileno()).st_ino
    code = f"""import os
calls = [lambda fd: os.write(fd, b"GARBAGE\\n"), lambda fd: os.writev(fd, [b"GARBAGE\\n"]), lambda fd: os.read(fd, 1),
         lambda fd: os.pwrite(fd, b"x", 0), lambda fd: os.sendfile(fd, 0, 0, 1), lambda fd: os.fsync(fd)]
refused = []
for fd in sorted(int(n) for n in os.listdir('/proc/self/fd') if int(n) > 2):
    try:
        if os.fstat(fd).st_ino != {protocol}:
            continue
    except OSError:
        continue
    for call in calls:
        try:
            call(fd)
        except OSError as error:
            refused.append(error.errno)
reader, writer = os.pipe()
os.write(writer, b"own")
print(refused, os.read(reader, 3))
"""
    ran = kernel.run_code(code)
    refused, own = ran.stdout.rsplit(" ", 1)
    assert refused.startswith("[9, 9, 9, 9, 9, 9") and set(eval(refused)) == {9}, ran.stdout
    assert own == "b'own'\n"
    assert kernel.run_code("print('still serving')").stdout == "still serving\n"


def test_opening_the_servers_descriptors_through_proc_is_refused(kernel):
    """`open('/proc/self/fd/N', 'wb')` of the server's protocol output wrote a forged response
    into the protocol; opening its input for reading let a thread take requests (never answered).
    Every path naming this process's descriptor directory is refused (EBADF) for the engine's
    descriptors, with `os.open` and `open`, while the code's own descriptors and /dev/stdout open
    as in python3."""
    output = os.fstat(kernel._process.stdout.fileno()).st_ino
    request_input = os.fstat(kernel._process.stdin.fileno()).st_ino
    code = f"""import os, pathlib, threading
def engine(inode):
    for name in os.listdir('/proc/self/fd'):
        try:
            if int(name) > 2 and os.fstat(int(name)).st_ino == inode:
                return int(name)
        except OSError:
            pass
pid, tid = os.getpid(), threading.get_native_id()
paths = lambda fd: [f'/proc/self/fd/{{fd}}', f'/dev/fd/{{fd}}', f'/proc/thread-self/fd/{{fd}}', f'/proc/{{pid}}/fd/{{fd}}',
                    f'/proc/{{pid}}/task/{{tid}}/fd/{{fd}}', f'/proc/{{tid}}/fd/{{fd}}', f'/proc/self/../self/fd/0{{fd}}',
                    pathlib.Path(f'/proc/self/fd/{{fd}}'), f'/proc/self/fd/{{fd}}'.encode()]
outcomes = []
def attempt(opening):
    try:
        opened = opening()
    except OSError as error:
        outcomes.append(error.errno)
    else:
        outcomes.append('opened')
        os.close(opened) if isinstance(opened, int) else opened.close()
forged = b'{{"jsonrpc":"2.0","id":"forged","result":{{}}}}\\n'
for fd, flags, mode in ((engine({output}), os.O_WRONLY, 'wb'), (engine({request_input}), os.O_RDONLY | os.O_NONBLOCK, 'rb')):
    for path in paths(fd):
        attempt(lambda: os.open(path, flags))
        attempt(lambda: open(path, mode, buffering=0))
    os.chdir('/proc/self/fd')
    attempt(lambda: os.open(str(fd), flags))
    attempt(lambda: open(str(fd), mode))
    os.chdir('/')
reader, writer = os.pipe()
with open(f'/proc/self/fd/{{writer}}', 'wb') as own:
    own.write(b'own pipe')
print(sorted(set(map(str, outcomes))), len(outcomes), os.read(reader, 8))
with open('/dev/stdout', 'wb') as stdout:
    stdout.write(b'stdout\\n')
"""
    ran = kernel.run_code(code, timeout=20)
    assert (ran.status, sorted(ran.stdout.splitlines())) == ("ok", ["['9'] 40 b'own pipe'", "stdout"]), ran
    assert kernel.run_code("print('still serving')").stdout == "still serving\n"


def test_timers_whose_signal_would_end_the_shared_server_are_refused(kernel):
    """`signal.alarm(1)` (or `setitimer`) in a namespace context ended the server by SIGALRM:
    at the signal's default action it is refused; with the code's handler it is armed and the
    handler runs, as in python3. A process context's worker ends by it, as python3 would."""
    refused = kernel.run_code("import signal\nfor arm in (lambda: signal.alarm(1), lambda: signal.setitimer(signal.ITIMER_VIRTUAL, 0.1)):\n"
                              "    try:\n        arm()\n    except PermissionError as e:\n        print(e.errno, 'process context' in str(e))")
    assert refused.stdout == "1 True\n1 True\n", refused
    handled = kernel.run_code("import signal, time\nsignal.signal(signal.SIGALRM, lambda s, f: print('alarm', s))\n"
                              "signal.setitimer(signal.ITIMER_REAL, 0.05)\ntry:\n    signal.signal(signal.SIGALRM, signal.SIG_DFL)\n"
                              "except PermissionError as e:\n    print(e.errno)\nsignal.pause()\nprint('after')", timeout=20)
    assert handled.stdout == "1\nalarm 14\nafter\n", handled
    ctx = kernel.create_context(isolation="process")
    crashed = kernel.run_code("import signal, time\nsignal.alarm(1)\ntime.sleep(10)", context=ctx, timeout=20)
    assert crashed.status == "crashed" and "signal 14" in crashed.error.value, crashed
    assert kernel.run_code("print('server alive')").stdout == "server alive\n"


def test_a_descriptor_number_the_server_gave_up_is_the_codes(kernel):
    """Descriptors are the engine's by number and by what they are (device, inode): a number the
    engine closed after noting it, now the code's own file, is the code's to close."""
    code = ("import os, pykernel_runtime as rt\nsaved = dict(rt._engine_descriptors)\nr, w = os.pipe()\n"
            "rt._engine_descriptors[r] = (-1, -1)\nos.close(r)\n"
            "status = os.fstat(w)\nrt._engine_descriptors[w] = (status.st_dev, status.st_ino)\n"
            "try:\n    os.close(w)\nexcept OSError as e:\n    print(e.errno)\n"
            "rt._engine_descriptors.clear()\nrt._engine_descriptors.update(saved)\nos.close(w)\nprint('done')")
    assert kernel.run_code(code).stdout == "9\ndone\n"


def test_a_session_or_group_of_its_own_is_refused_for_the_shared_server(kernel):
    """`os.setsid()`, `os.setpgrp()`, `os.setpgid(0, 0)` in a namespace context moved the server
    every context shares into a session or group of its own; refused there (a forked child may).
    A process context's worker, which leads a session and group of its own already (a bare
    `EPERM`, where the docs said it may), says so."""
    code = ("import os\nfor call in (os.setsid, os.setpgrp, lambda: os.setpgid(0, 0)):\n    try:\n        call()\n"
            "    except PermissionError as e:\n        print(e.errno, 'namespace context' in str(e), 'already' in str(e))\n")
    before = kernel.run_code("import os\nprint(os.getsid(0), os.getpgrp())").stdout
    refused = kernel.run_code(code)
    assert refused.stdout == "1 True False\n" * 3, refused
    assert kernel.run_code("import os\nprint(os.getsid(0), os.getpgrp())").stdout == before
    child = kernel.run_code("import os\npid = os.fork()\nif pid == 0:\n    os.setsid()\n    os._exit(0 if os.getsid(0) == os.getpid() else 3)\n"
                            "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))")
    assert child.stdout == "0\n", child
    ctx = kernel.create_context(isolation="process")
    worker_ids = kernel.run_code("import os\nprint(os.getsid(0), os.getpgrp(), os.getpid())", context=ctx).stdout
    worker = kernel.run_code(code, context=ctx)
    assert worker.status == "ok" and worker.stdout == "1 False True\n" * 3, worker
    _, group, pid = worker_ids.split()
    assert group == pid  # still the leader of the group the server kills
    assert kernel.run_code("import os\nprint(os.getsid(0), os.getpgrp(), os.getpid())", context=ctx).stdout == worker_ids
    kernel.delete_context(ctx)


def test_limits_that_would_end_the_shared_server_are_refused(kernel):
    """`resource.setrlimit(RLIMIT_CPU, (1, 2))` in a cell, then a loop: SIGXCPU ended the server
    every context shares. Lowering such a limit there is refused (raising one is not); a process
    context's worker and a subprocess may lower it."""
    refused = kernel.run_code("import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_CPU, (1, 2))\n"
                              "except PermissionError as e:\n    print(e.errno, 'process context' in str(e))\n"
                              "print(resource.getrlimit(resource.RLIMIT_CPU) == (resource.RLIM_INFINITY,) * 2)")
    assert refused.stdout == "1 True\nTrue\n", refused
    raised = kernel.run_code("import resource\nsoft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
                             "resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))\nprint(resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard))")
    assert raised.stdout == "True\n", raised
    child = kernel.run_code("import resource, subprocess\nprint(subprocess.run(['sh', '-c', 'ulimit -t'], capture_output=True, text=True,\n"
                            "    preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CPU, (7, 7))).stdout, end='')")
    assert child.stdout == "7\n", child
    ctx = kernel.create_context(isolation="process")
    worker = kernel.run_code("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))\n"
                             "print(resource.getrlimit(resource.RLIMIT_CPU))", context=ctx)
    assert worker.stdout == "(100, 100)\n", worker
    assert kernel.run_code("print('server alive')").stdout == "server alive\n"


def test_the_pending_signals_limit_is_refused_for_the_shared_server(kernel):
    """`resource.setrlimit(RLIMIT_SIGPENDING, (0, 0))` in a namespace context: the engine's stop
    signal (real-time, queued) could no longer be sent, so no timeout or interrupt reached a
    blocking call and every namespace context was answered `interpreter_busy`. Refused there,
    through `prlimit` too; a sleep is still stopped at its timeout."""
    code = ("import os, resource\nfor lower in (lambda: resource.setrlimit(resource.RLIMIT_SIGPENDING, (0, 0)),\n"
            "              lambda: resource.prlimit(os.getpid(), resource.RLIMIT_SIGPENDING, (0, 0))):\n"
            "    try:\n        lower()\n    except PermissionError as e:\n        print(e.errno, 'process context' in str(e))\n"
            "print(resource.getrlimit(resource.RLIMIT_SIGPENDING)[0] > 0)")
    assert kernel.run_code(code).stdout == "1 True\n1 True\nTrue\n"
    with pytest.raises(PyKernelTimeoutError):
        kernel.run_code("import time\ntime.sleep(30)", timeout=0.3)
    assert kernel.run_code("print('free')", context=kernel.create_context()).stdout == "free\n"


def test_a_process_context_that_lowers_the_pending_signals_limit_is_still_stopped(kernel):
    """A process context's worker may lower `RLIMIT_SIGPENDING` (its process is its own): the stop
    signal, which the kernel then refuses to queue for a thread, goes to the worker's process
    (whose main thread runs the code). Before, a sleep there was not stopped by its timeout, and
    the worker was killed after the grace period (the context's state lost)."""
    ctx = kernel.create_context(isolation="process")
    lowered = kernel.run_code("import resource\nresource.setrlimit(resource.RLIMIT_SIGPENDING, (0, 0))\nkept = 1\n"
                              "print(resource.getrlimit(resource.RLIMIT_SIGPENDING))", context=ctx)
    assert lowered.stdout == "(0, 0)\n", lowered
    with pytest.raises(PyKernelTimeoutError) as caught:
        kernel.run_code("import time\ntime.sleep(30)", context=ctx, timeout=0.3)
    assert caught.value.result.error.traceback.endswith("TimeoutError: execution exceeded the 0.3 s timeout\n"), caught.value.result
    assert kernel.run_code("print(kept)", context=ctx).stdout == "1\n"


def test_a_contexts_handlers_and_timers_run_only_in_its_own_runs(kernel):
    """Context A's SIGALRM handler and timer, armed as its run ended, fired in context B's run:
    B's `time.sleep` ended `error` with A's exception. A context's handlers are its own
    (B sees python3's defaults), and its timers count while its code runs: A's fires in A's
    next run, as if A's process had been stopped in between."""
    a, b = kernel.create_context(), kernel.create_context()
    armed = kernel.run_code(
        "import signal\ndef handler(number, frame):\n    print('handler of a', number)\n    raise RuntimeError('raised by a')\n"
        "print(signal.signal(signal.SIGALRM, handler))\nsignal.signal(signal.SIGRTMIN + 3, handler)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.05)\nprint(signal.getsignal(signal.SIGALRM) is handler)", context=a)
    assert armed.stdout == "0\nTrue\n", armed
    seen = kernel.run_code("import signal, time\nprint(signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGRTMIN + 3), "
                           "signal.getitimer(signal.ITIMER_REAL))\ntime.sleep(0.3)\nprint('b done')", context=b)
    assert (seen.status, seen.stdout) == ("ok", "0 0 (0.0, 0.0)\nb done\n"), seen
    fired = kernel.run_code("print(signal.getitimer(signal.ITIMER_REAL)[0] > 0)\nsignal.pause()", context=a, timeout=20)
    assert (fired.status, fired.stdout, fired.error.name, fired.error.value) == (
        "error", "True\nhandler of a 14\n", "RuntimeError", "raised by a"), fired
    periodic = kernel.run_code("ticks = []\nsignal.signal(signal.SIGALRM, lambda number, frame: ticks.append(number))\n"
                               "signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)\nwhile len(ticks) < 3:\n    signal.pause()\n"
                               "print('ticking')", context=a, timeout=20)
    assert periodic.stdout == "ticking\n", periodic
    assert kernel.run_code("import time\ntime.sleep(0.1)\nprint('b again')", context=b).stdout == "b again\n"
    assert kernel.run_code("before = len(ticks)\nwhile len(ticks) == before:\n    signal.pause()\n"
                           "signal.setitimer(signal.ITIMER_REAL, 0)\nprint('still ticking')", context=a, timeout=20).stdout == "still ticking\n"


def test_deleting_a_context_cancels_its_timers_and_restores_its_handlers(kernel):
    """A deleted context leaves nothing behind: before, its timer went on firing, its handler
    running in every later run of every context."""
    a, b = kernel.create_context(), kernel.create_context()
    kernel.run_code("import signal\nsignal.signal(signal.SIGALRM, lambda number, frame: print('handler of a'))\n"
                    "signal.signal(signal.SIGUSR1, lambda number, frame: print('handler of a'))\n"
                    "signal.setitimer(signal.ITIMER_REAL, 0.02, 0.02)", context=a)
    kernel.delete_context(a)
    after = kernel.run_code(
        "import signal, time\ntime.sleep(0.2)\ncaught = int(open('/proc/self/status').read().split('SigCgt:')[1].split()[0], 16)\n"
        "print(signal.getsignal(signal.SIGALRM), signal.getsignal(signal.SIGUSR1), signal.getitimer(signal.ITIMER_REAL), "
        "caught >> (signal.SIGALRM - 1) & 1, caught >> (signal.SIGUSR1 - 1) & 1)", context=b)
    assert (after.status, after.stdout) == ("ok", "0 0 (0.0, 0.0) 0 0\n"), after


def test_a_signal_for_a_context_that_does_not_run_is_held_for_its_next_run(kernel):
    """A signal that comes while another context's code runs goes to that context's handler if
    it has one, else it is held for the contexts that handle it: each gets it as its next run
    begins. A timer a thread of a context arms while that context does not run is its own too."""
    a, b = kernel.create_context(), kernel.create_context()
    kernel.run_code(
        "import builtins, signal, threading\nsignal.signal(signal.SIGUSR1, lambda number, frame: print('a got', number))\n"
        "signal.signal(signal.SIGALRM, lambda number, frame: print('alarm of a'))\n"
        "builtins.a_go, builtins.a_done = threading.Event(), threading.Event()\n"
        "def arm():\n    builtins.a_go.wait()\n    builtins.a_armed = (signal.setitimer(signal.ITIMER_REAL, 0.05), signal.getitimer(signal.ITIMER_REAL))\n"
        "    builtins.a_done.set()\nthreading.Thread(target=arm).start()", context=a)
    during = kernel.run_code(
        "import builtins, os, signal, subprocess, time, pykernel_runtime\n"
        "subprocess.run(['kill', '-USR1', str(os.getpid())], check=True)\nwhile not pykernel_runtime._held_signals:\n    pass\n"
        "builtins.a_go.set()\nbuiltins.a_done.wait()\ntime.sleep(0.2)\nprint(builtins.a_armed, signal.getitimer(signal.ITIMER_REAL))",
        context=b, timeout=20)
    assert (during.status, during.stdout) == ("ok", "((0.0, 0.0), (0.05, 0.0)) (0.0, 0.0)\n"), during
    resumed = kernel.run_code("print('a')\nsignal.pause()\ndel builtins.a_go, builtins.a_done, builtins.a_armed", context=a, timeout=20)
    assert (resumed.status, resumed.stdout) == ("ok", "a got 10\na\nalarm of a\n"), resumed

def test_handlers_a_preloaded_module_sets_are_the_processs(pykernel_bin, tmp_path):
    """`--preload` imports in a context of its own, deleted afterwards: the handlers its modules
    set stay, as the process's (every context sees them, and gets them back from its own)."""
    from pykernel import PyKernel

    (tmp_path / "sets_a_handler.py").write_text(
        "import signal\ngot = []\nsignal.signal(signal.SIGUSR1, lambda number, frame: got.append(number))\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    check = ("import os, signal, sets_a_handler\nprint(signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL)\n"
             "os.kill(os.getpid(), signal.SIGUSR1)\nprint(sets_a_handler.got)")
    with PyKernel(pykernel_bin, args=["--preload", "sets_a_handler"], env=env) as kernel:
        assert kernel.run_code(check).stdout == "True\n[10]\n"
        own = kernel.create_context()
        assert kernel.run_code("import os, signal\nsignal.signal(signal.SIGUSR1, lambda number, frame: print('own', number))\n"
                               "os.kill(os.getpid(), signal.SIGUSR1)", context=own).stdout == "own 10\n"
        kernel.delete_context(own)
        assert kernel.run_code(check, context=kernel.create_context()).stdout == "True\n[10, 10]\n"


# SIGPIPE and SIGXFSZ ignored (bits 13 and 25 of /proc's SigIgn) here, and in a subprocess.
IGNORED_AT_START = (
    "import signal, subprocess\n"
    "def ignored(status):\n    mask = int(status.split('SigIgn:')[1].split()[0], 16)\n"
    "    return [name for name, number in (('SIGPIPE', 13), ('SIGXFSZ', 25)) if mask >> (number - 1) & 1]\n"
    "print(signal.getsignal(signal.SIGPIPE), signal.getsignal(signal.SIGXFSZ), ignored(open('/proc/self/status').read()))\n"
    "print(ignored(subprocess.run(['cat', '/proc/self/status'], capture_output=True, text=True).stdout))\n")


def test_sigpipe_and_sigxfsz_are_ignored_as_python3_ignores_them(module_kernel, ctx):
    """python3 ignores SIGXFSZ at start (as it does SIGPIPE), and `subprocess` puts both back
    for its children: a worker was killed by SIGXFSZ at a write past the `RLIMIT_FSIZE` its
    code set (the run `crashed`, what it printed before lost)."""
    expected = subprocess.run([PYTHON, "-c", IGNORED_AT_START], capture_output=True, text=True, check=True).stdout
    assert expected == "1 1 ['SIGPIPE', 'SIGXFSZ']\n[]\n"
    assert module_kernel.run_code(IGNORED_AT_START, context=ctx).stdout == expected


def test_a_write_past_the_file_size_limit_raises_in_a_process_context(kernel, tmp_path):
    ctx = kernel.create_context(isolation="process")
    code = (f"import resource\nkept = 1\nprint('before')\nresource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
            f"try:\n    with open({str(tmp_path / 'big')!r}, 'w') as f:\n        f.write('x' * 10)\n"
            "except OSError as e:\n    print('OSError', e.errno)\n")
    expected = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert expected == "before\nOSError 27\n"
    result = kernel.run_code(code, context=ctx)
    assert (result.status, result.stdout) == ("ok", expected), result
    assert kernel.run_code("print(kept)", context=ctx).stdout == "1\n"
    # The process API's commands start with both at their defaults, as a shell's do.
    reply = kernel.call("process.exec", {"command": "grep SigIgn /proc/self/status"})
    assert int(reply["stdout"].split()[1], 16) & (1 << 12 | 1 << 24) == 0, reply


# Code that loads the modules the guards live in anew, then a call the guards keep from ending or
# cutting off the server, and what that call gives in a namespace context.
RELOADED = {
    "reload(os)": ("import importlib\nimportlib.reload(os)\nos._exit(3)", "SystemExit: 3"),
    "os imported anew": ("import sys\ndel sys.modules['os']\nimport os\nos.kill(os.getpid(), signal.SIGTERM)", "SystemExit: 143"),
    "posix and os imported anew": ("import sys\ndel sys.modules['posix'], sys.modules['os']\nimport os\nos.abort()",
                                   "SystemExit: 134"),
    "posix's own": ("import posix\nposix.killpg(0, signal.SIGHUP)", "SystemExit: 129"),
    "from posix import _exit": ("from posix import _exit\n_exit(4)", "SystemExit: 4"),
    "reload(os), closerange": ("import importlib\nimportlib.reload(os)\nos.closerange(3, 1 << 16)\nprint('closed')", None),
    "reload(signal)": ("import importlib\nimportlib.reload(signal)\nsignal.alarm(1)", "PermissionError"),
    "_signal and signal imported anew": (
        "import sys\ndel sys.modules['_signal'], sys.modules['signal']\nimport signal\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.5)", "PermissionError"),
    "reload(resource)": ("import importlib, resource\nimportlib.reload(resource)\n"
                         "resource.setrlimit(resource.RLIMIT_CPU, (1, 2))", "PermissionError"),
    "resource imported anew": ("import sys\ndel sys.modules['resource']\nimport resource\n"
                               "resource.prlimit(0, resource.RLIMIT_NOFILE, (3, 3))", "PermissionError"),
}


@pytest.mark.parametrize("case", RELOADED)
def test_the_guards_outlive_their_modules_loaded_anew(kernel, case):
    """`importlib.reload(os)` (or `del sys.modules['os']; import os`) gave the code the raw `os`
    functions back, and `importlib.reload(signal)` the raw `signal.alarm`: `os._exit(3)` ended
    the server with status 3, `os.closerange(3, ...)` cut its protocol, `signal.alarm(1)` ended it
    by SIGALRM. The guards live in `posix`, `_signal` and `resource`, which `os` and `signal`
    copy their functions from, and those modules are never made anew. Another context is still
    served, and still stopped at its timeout."""
    code, error = RELOADED[case]
    other = kernel.create_context()
    result = _run(kernel, code, None)
    if error is None:
        assert (result.status, result.stdout) == ("ok", "closed\n"), result
    else:
        assert result.status == "error" and f"{result.error.name}: {result.error.value}".startswith(error), result
    with pytest.raises(PyKernelTimeoutError):
        kernel.run_code("import time\ntime.sleep(30)", context=other, timeout=0.3)
    _still_serving(kernel, other)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_os_exit_after_reload_ends_the_run_in_either_context(kernel, isolation):
    ctx = kernel.create_context(isolation=isolation)
    kernel.run_code("kept = 1", context=ctx)
    result = _run(kernel, "import importlib\nimportlib.reload(os)\nos._exit(3)", ctx)
    assert (result.status, result.error.name, result.error.value) == ("error", "SystemExit", "3"), result
    assert kernel.run_code("print(kept)", context=ctx).stdout == "1\n"


def test_guarded_functions_look_as_python3s_after_a_reload(kernel):
    """The guards stand in for the functions of `posix` and `_signal` with their names, module and
    documentation; `os` and `signal` (their Python wrappers too) are python3's after a reload."""
    code = ("import importlib, inspect, os, posix, signal, _signal\n"
            "for module, names in ((os, ['_exit', 'kill', 'closerange', 'write']), (posix, ['_exit', 'kill']),\n"
            "                      (signal, ['signal', 'getsignal', 'pthread_sigmask', 'alarm', 'setitimer'])):\n"
            "    for name in names:\n"
            "        f = getattr(module, name)\n"
            "        print(name, f.__name__, f.__module__, f.__doc__ is not None, str(inspect.signature(f)) if name in ('signal', 'getsignal', 'pthread_sigmask') else '')\n"
            "    print(importlib.reload(module) is module)\n")
    expected = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert kernel.run_code(code).stdout == expected
    # Imported anew after `del sys.modules[...]`, python3 makes a new module; the engine keeps its own.
    kept = kernel.run_code("import sys, posix\ndel sys.modules['posix']\nimport posix as again\n"
                           "print(again is posix, again.__spec__.name, again.__loader__.__name__)")
    assert kept.stdout == "True posix BuiltinImporter\n", kept


def test_threads_started_after_reloading_threading_print_into_their_context(kernel):
    """A thread started after `importlib.reload(threading)` (a new `Thread` class), and the
    process it starts after `importlib.reload(subprocess)`, printed into the run of whichever
    context ran then; they are their context's again."""
    a, b = kernel.create_context(), kernel.create_context()
    started = kernel.run_code(
        "import builtins, importlib, subprocess, threading\nthreading.Thread(target=lambda: None).start()\n"
        "importlib.reload(threading)\nimportlib.reload(subprocess)\n"
        "builtins.a_go, builtins.a_done = threading.Event(), threading.Event()\n"
        "def thread():\n    builtins.a_go.wait()\n    print('thread of a', flush=True)\n"
        "    subprocess.run(['echo', 'process of a'])\n    builtins.a_done.set()\n"
        "t = threading.Thread(target=thread)\nt.start()", context=a)
    assert started.status == "ok", started
    during = kernel.run_code("import builtins\nbuiltins.a_go.set()\nbuiltins.a_done.wait()\nprint('b')", context=b, timeout=20)
    assert (during.status, during.stdout) == ("ok", "b\n"), during
    after = kernel.run_code("t.join()\ndel builtins.a_go, builtins.a_done\nprint('a')", context=a)
    assert after.stdout.startswith("thread of a\n") and after.stdout.endswith("a\n"), after


def test_pykernel_run_keeps_os_kill_posixs_own(pykernel_bin):
    """`pykernel run`'s `os.kill` (which delivers a signal to itself before it returns, as a
    one-threaded python3) is `posix.kill` too, as python3's is, so it outlives `importlib.reload(os)`."""
    code = ("import importlib, os, posix, signal\nprint(os.kill is posix.kill)\nimportlib.reload(os)\n"
            "print(os.kill is posix.kill)\nseen = []\nsignal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))\n"
            "os.kill(os.getpid(), signal.SIGUSR1)\nprint(seen)\n")
    expected = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True).stdout
    assert expected == "True\nTrue\n[10]\n"
    ours = subprocess.run([pykernel_bin, "run", "-c", code], capture_output=True, text=True, timeout=30)
    assert (ours.returncode, ours.stdout) == (0, expected), ours
