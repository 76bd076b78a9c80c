"""Forks and child processes started by user code in a served context, in both isolation modes.

`os.fork()`, `multiprocessing` (fork, spawn, forkserver), `concurrent.futures.ProcessPoolExecutor`
and `subprocess` from a run must work every time, print into the run's output, and never hang,
answer in the server's place, or outlive a stop. Every call has a deadline (a hang fails fast),
and the Pool cases repeat: before the fix a Pool hung within a few rounds (its workers ignored
the SIGTERM of `Pool.terminate()`, caught by the server's handler they inherited).
"""

import os
import signal
import time

import pytest
from pykernel.errors import PyKernelTimeoutError

from background_calls import joined, run_in_thread

ISOLATIONS = ("namespace", "process")
CALL_DEADLINE = 20  # seconds for any one call: far above what each takes


@pytest.fixture(scope="module")
def server(module_kernel):
    return module_kernel


@pytest.fixture(params=ISOLATIONS)
def ctx(request, server):
    context = server.create_context(isolation=request.param)
    yield context
    server.delete_context(context)


def run(server, code, ctx, deadline=CALL_DEADLINE, **options):
    """run_code that fails the test instead of hanging when the run does not end in time."""
    options.setdefault("timeout", deadline)
    thread, outcome = run_in_thread(server.run_code, code, ctx, **options)
    return joined(thread, outcome, timeout=deadline + 5)


def ok(server, code, ctx, **options):
    result = run(server, code, ctx, **options)
    assert result.status == "ok", (result.status, result.stderr, result.error)
    return result


def gone(pid):
    """Whether a process has ended (no such process, or a zombie its parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pids, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_pool_map_in_a_loop(server, ctx):
    for round_ in range(25):
        result = ok(server, "import multiprocessing\nwith multiprocessing.Pool(2) as p: print(p.map(abs, range(-5, 0)))", ctx)
        assert result.stdout == "[5, 4, 3, 2, 1]\n", round_


def test_process_pool_executor_and_process_in_a_loop(server, ctx):
    code = """
import concurrent.futures, multiprocessing
with concurrent.futures.ProcessPoolExecutor(2) as pool:
    print(list(pool.map(abs, [-1, -2, -3])))
worker = multiprocessing.Process(target=print, args=("from the child",))
worker.start(); worker.join()
print(worker.exitcode)
"""
    for _ in range(8):
        assert ok(server, code, ctx).stdout == "[1, 2, 3]\nfrom the child\n0\n"


def test_os_fork_output_reaches_the_run_in_order(server, ctx):
    code = """
import os
print("before", flush=True)
pid = os.fork()
if pid == 0:
    print("child", flush=True)
    os._exit(5)
print("status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    for _ in range(20):
        assert ok(server, code, ctx).stdout == "before\nchild\nstatus 5\n"


def test_a_child_forked_while_the_engine_holds_its_locks_still_ends(server, ctx):
    """A thread of the run flushes the engine's stream in a loop (taking the engine's output lock)
    while the cell forks: a child then writes and flushes through the stream object kept from
    before the fork and ends by returning (its streams are flushed as python3's are): it must
    not wait for a lock that a thread it does not have held at the fork."""
    code = """
import os, sys, threading, time
saved = sys.stdout
stop = False
def flusher():
    while not stop:
        sys.stdout.flush()
threading.Thread(target=flusher, daemon=True).start()
stuck = 0
for _ in range(40):
    pid = os.fork()
    if pid == 0:
        saved.write('child\\n')
        saved.flush()
        break
    deadline = time.monotonic() + 10
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            stuck += 1
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.002)
if pid:
    stop = True
    print('stuck', stuck)
"""
    result = ok(server, code, ctx)
    assert result.stdout.endswith("stuck 0\n"), result.stdout[-300:]
    assert result.stdout.count("child\n") == 40


UNBUFFERED_CHILDREN = """
import os, pty, sys
pid = os.fork()
if pid == 0:
    print('forked child', sys.stdout.line_buffering, sys.stdout.write_through, type(sys.stdout.buffer).__name__)
    print('to stderr', file=sys.stderr)
    os._exit(0)
os.waitpid(pid, 0)
pid, terminal = pty.fork()
if pid == 0:
    print('pty child')
    os._exit(0)
seen = b''
while True:
    try:
        chunk = os.read(terminal, 1024)
    except OSError:  # EIO: the child's side is closed
        break
    if not chunk:
        break
    seen += chunk
os.waitpid(pid, 0)
os.close(terminal)
print('parent', seen)
"""


@pytest.mark.parametrize("unbuffered", ["1", "", None])
def test_a_childs_streams_follow_pythonunbuffered_as_python3s(server, ctx, unbuffered):
    """With ``PYTHONUNBUFFERED`` set (not empty) in ``os.environ``, a child forked by the code
    (``os.fork``, ``pty.fork``) has python3's unbuffered streams: what it prints before its
    ``os._exit`` is not lost (its streams were block-buffered whatever the variable said);
    without it, python3's child loses it, and so does the context's."""
    import subprocess
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    envs = {} if unbuffered is None else {"PYTHONUNBUFFERED": unbuffered}
    done = subprocess.run(["/usr/bin/python3.11", "-c", UNBUFFERED_CHILDREN], env={**env, **envs},
                          capture_output=True, text=True, timeout=CALL_DEADLINE)
    assert done.returncode == 0, done.stderr
    if unbuffered:
        assert done.stdout.startswith("forked child False True FileIO\n"), done.stdout
    envs.setdefault("PYTHONUNBUFFERED", "")  # the server's own environment may set it
    result = ok(server, UNBUFFERED_CHILDREN, ctx, envs=envs)
    assert (result.stdout, result.stderr) == (done.stdout, done.stderr)


def test_a_child_asking_for_input_gets_none(server, ctx):
    """In a run that may ask its caller for input, a forked child's `input()` does not wait for
    an answer nobody would send: it gets no standard input, at once."""
    code = """
import os, time
pid = os.fork()
if pid == 0:
    try:
        input('child? ')
    except EOFError:
        print('child: EOFError', flush=True)
    os._exit(0)
deadline = time.monotonic() + 10
while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
    time.sleep(0.002)
print('parent')
"""
    asked = []
    result = ok(server, code, ctx, on_input=lambda prompt, password: asked.append(prompt) or "answer")
    assert result.stdout == "child? child: EOFError\nparent\n"  # the prompt, then end of file, as python3's
    assert asked == []


def test_a_child_is_ended_by_sigterm_as_in_python3(server, ctx):
    code = """
import os, signal, time
pid = os.fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
os.kill(pid, signal.SIGTERM)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    assert ok(server, code, ctx).stdout == f"{-signal.SIGTERM}\n"


@pytest.mark.parametrize(("child", "status", "stderr"), [
    ("print('child falls off the end')", 0, ""),
    ("raise ValueError('in the child')", 1, "ValueError: in the child\n"),
    ("import sys; sys.exit(3)", 3, ""),
    ("import sys; sys.exit('bye')", 1, "bye\n"),
])
def test_a_child_whose_code_returns_ends_as_python3s_child(server, ctx, child, status, stderr):
    """The child's copy of the cell ends it (python3's end of program), and never answers the run."""
    code = f"""
import os
pid = os.fork()
if pid == 0:
    {child}
else:
    print("parent sees", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    result = ok(server, code, ctx)
    assert result.stdout.endswith(f"parent sees {status}\n")
    assert result.stderr.endswith(stderr)
    assert ok(server, "print('next run')", ctx).stdout == "next run\n"


@pytest.mark.parametrize(("child", "message"), [
    ("sys.exit('msg')", "msg\n"),
    ("raise ValueError('v')", "ValueError: v\n"),
    ("raise KeyboardInterrupt", "KeyboardInterrupt\n"),
])
def test_a_child_whose_code_returns_flushes_stdout_before_its_message(server, ctx, child, message):
    """A forked child ending as python3's child ends flushes its streams first (`flush_io`), then
    prints its uncaught exception or `sys.exit`'s message: with its stderr on stdout's pipe, the
    partial line it printed comes first (the message came before it). Buffered, as without
    ``PYTHONUNBUFFERED`` (which the server's environment may set)."""
    code = f"""
import os, sys
pid = os.fork()
if pid == 0:
    os.dup2(1, 2)
    print('pre', end='')
    {child}
os.waitpid(pid, 0)
"""
    result = ok(server, code, ctx, envs={"PYTHONUNBUFFERED": ""})
    assert result.stdout.startswith("pre"), result.stdout
    assert result.stdout.endswith(message), result.stdout
    assert ok(server, "print('next run')", ctx).stdout == "next run\n"


def test_os_exit_in_the_cell_itself_stays_a_system_exit_record(server, ctx):
    result = run(server, "import os\nos._exit(3)", ctx)
    assert (result.status, result.error.name, result.error.value) == ("error", "SystemExit", "3")
    assert ok(server, "print('alive')", ctx).stdout == "alive\n"


# Children forked by libc's fork() called through ctypes: no hook of Python's runs in them (the
# engine's own pthread_atfork handler marks them). Each child that could outlive a failure is
# ended by its parent's code.
LIBC_FORK = "import ctypes\nfork = ctypes.CDLL(None).fork\n"


@pytest.mark.parametrize(("child", "status", "stderr"), [
    ("print('child falls off the end')", 0, ""),
    ("raise ValueError('in the child')", 1, "ValueError: in the child\n"),
    ("import sys; sys.exit(3)", 3, ""),
])
def test_a_child_forked_by_libc_whose_code_returns_ends_without_answering(server, ctx, child, status, stderr):
    """A child of libc's fork() whose copy of the cell returns ends there as python3's child ends,
    and never answers the run (it answered in the server's place, under the run's id, and the
    client took its answer for the run's; then it served on, a copy of the server)."""
    code = LIBC_FORK + f"""
import os
pid = fork()
if pid == 0:
    {child}
else:
    print("parent sees", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""
    result = ok(server, code, ctx)
    assert result.stdout.endswith(f"parent sees {status}\n"), result.stdout
    assert result.stderr.endswith(stderr)
    assert ok(server, "print('next run')", ctx).stdout == "next run\n"


LIBC_FORK_SESSION_AND_EXIT = LIBC_FORK + """
import os
reader, writer = os.pipe()
pid = fork()
if pid == 0:
    os.close(reader)
    try:
        os.setsid()
        os.write(writer, str(os.getsid(0) == os.getpid()).encode())
    except OSError as error:
        os.write(writer, repr(error).encode())
    os._exit(7)
os.close(writer)
print("own session:", os.read(reader, 1000).decode())
print("status", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_a_child_forked_by_libc_has_python3s_setsid_and_os_exit(server, ctx):
    """Its ``os.setsid`` works and its ``os._exit`` exits with its status, as in python3's child
    (``PermissionError`` for the server's session, and ``SystemExit`` that let it run on)."""
    import subprocess
    python3 = subprocess.run(["/usr/bin/python3.11", "-c", LIBC_FORK_SESSION_AND_EXIT],
                             capture_output=True, text=True, timeout=CALL_DEADLINE)
    assert python3.stdout == "own session: True\nstatus 7\n", python3
    assert ok(server, LIBC_FORK_SESSION_AND_EXIT, ctx).stdout == python3.stdout


def test_a_child_forked_by_libc_is_ended_by_sigterm(server, ctx):
    """It had the server's SIGTERM handling, in a process without the thread that acts on it:
    SIGTERM did nothing. python3's child ends by it."""
    code = LIBC_FORK + """
import os, signal, time
pid = fork()
if pid == 0:
    time.sleep(30)
    os._exit(0)
os.kill(pid, signal.SIGTERM)
deadline = time.monotonic() + 5
while os.waitpid(pid, os.WNOHANG) == (0, 0):
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        print("SIGTERM ignored", os.waitpid(pid, 0))
        break
    time.sleep(0.01)
else:
    print("ended")
"""
    assert ok(server, code, ctx).stdout == "ended\n"


def test_a_child_forked_by_libc_on_a_thread_exits_with_its_status(server, ctx):
    code = LIBC_FORK + """
import os, threading
statuses = []
def fork_and_wait():
    pid = fork()
    if pid == 0:
        os._exit(9)
    statuses.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
thread = threading.Thread(target=fork_and_wait)
thread.start(); thread.join()
print(statuses)
"""
    assert ok(server, code, ctx).stdout == "[9]\n"


LIBC_FORK_WHILE_ANOTHER_THREAD_HOLDS_THE_GIL = r"""
import ctypes, os, signal, threading, time
libc, held = ctypes.CDLL(None), ctypes.PyDLL(None)  # PyDLL's calls keep the GIL
forker, forker_id = threading.get_native_id(), threading.get_ident()
signal.signal(signal.SIGUSR1, lambda *_: None)
# The next fork() waits in pause() (a prepare handler) until a thread holding the GIL wakes it.
libc.__register_atfork(ctypes.cast(libc.pause, ctypes.c_void_p), None, None, None)
def hold_the_gil_across_the_fork():
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # pause(2) is system call 34
        with open(f"/proc/self/task/{forker}/syscall") as syscall:
            if syscall.read().split()[0] == "34":
                break
        time.sleep(0.005)
    held.pthread_kill(ctypes.c_ulong(forker_id), signal.SIGUSR1)
    held.usleep(300_000)
holder = threading.Thread(target=hold_the_gil_across_the_fork)
holder.start()
pid = libc.fork()
if pid == 0:
    os._exit(5)
holder.join()
deadline = time.monotonic() + 5
while os.waitpid(pid, os.WNOHANG) == (0, 0):
    if time.monotonic() > deadline:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        print("the child never took the GIL back")
        break
    time.sleep(0.01)
else:
    print("child ended")
"""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_child_forked_by_libc_while_another_thread_holds_the_gil_runs_on(kernel, isolation):
    """The child has only the forking thread; one of its parent's held the GIL at the fork (the
    engine's threads make that likelier than in python3: a run's thread forking hung 1 in ~200).
    python3's child waits forever to take the GIL back; the engine remakes it in the child as
    ``os.fork`` does. A fresh server: the code leaves a prepare handler in its process."""
    context = kernel.create_context(isolation=isolation)
    assert ok(kernel, LIBC_FORK_WHILE_ANOTHER_THREAD_HOLDS_THE_GIL, context).stdout == "child ended\n"


def test_a_child_forked_by_libc_in_a_results_repr_never_answers(server, ctx):
    """Code the engine runs for the run after the cell (the last value's ``repr``) forks: the
    child's copy ends before the run is answered."""
    code = LIBC_FORK + """
import os
class Forking:
    def __repr__(self):
        pid = fork()
        if pid:
            os.waitpid(pid, 0)
        return f"forked in repr, child={pid == 0}"
Forking()
"""
    result = ok(server, code, ctx)
    assert [item.data.get("text/plain") for item in result.results] == ["forked in repr, child=False"]
    assert ok(server, "print('next run')", ctx).stdout == "next run\n"


def test_spawn_forkserver_and_sys_executable(server, ctx):
    code = """
import multiprocessing, subprocess, sys
for method in ("spawn", "forkserver"):
    with multiprocessing.get_context(method).Pool(2) as pool:
        print(method, pool.map(abs, [-4, 5]))
done = subprocess.run([sys.executable, "-c", "import sys; print(sys.version_info[:2]); sys.exit(2)"])
print(done.returncode)
"""
    assert ok(server, code, ctx).stdout == "spawn [4, 5]\nforkserver [4, 5]\n(3, 11)\n2\n"


def test_children_printing_megabytes(server, ctx):
    code = """
import multiprocessing, sys
def shout(size):
    sys.stdout.write("o" * size + "\\n")
    sys.stderr.write("e" * size + "\\n")
    return size
with multiprocessing.Pool(2) as pool:
    print(pool.map(shout, [2_000_000, 2_000_000]))
"""
    sizes = {"stdout": 0, "stderr": 0}

    def count(message):
        sizes[message.stream] += len(message.output)

    result = ok(server, code, ctx, on_stdout=count, on_stderr=count)
    assert result.stdout.endswith("[2000000, 2000000]\n")
    assert sizes == {"stdout": 4_000_002 + len("[2000000, 2000000]\n"), "stderr": 4_000_002}


STOPPED_POOL = """
import multiprocessing, time
with multiprocessing.Pool(2) as pool:
    print(*[worker.pid for worker in pool._pool], flush=True)
    pool.map(time.sleep, [60, 60])
"""


@pytest.mark.parametrize("stop", ["interrupt", "timeout"])
def test_a_run_stopped_in_pool_map_ends_and_its_workers_with_it(server, ctx, stop):
    pids = []
    thread, outcome = run_in_thread(
        server.run_code, STOPPED_POOL, ctx, timeout=3 if stop == "timeout" else 60,
        on_stdout=lambda message: pids.extend(int(pid) for pid in message.output.split()))
    if stop == "interrupt":
        deadline = time.monotonic() + CALL_DEADLINE
        while not pids and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pids, "the pool did not start"
        assert server.interrupt(ctx)
        assert joined(thread, outcome, timeout=CALL_DEADLINE).status == "interrupted"
    else:
        with pytest.raises(PyKernelTimeoutError):
            joined(thread, outcome, timeout=CALL_DEADLINE)
    assert len(pids) == 2 and wait_gone(pids), "the pool's workers were left running"
    assert ok(server, "print('after')", ctx).stdout == "after\n"


STOP_AFTER_THE_FORK = """
import os, subprocess, time
real = subprocess._fork_exec
def fork_then_stop(*args):
    global started
    started = real(*args)
    raise KeyboardInterrupt  # as a stop raised when _fork_exec returns
subprocess._fork_exec = fork_then_stop
try:
    subprocess.run(['sh', '-c', 'sleep 0.3; echo LEAK'])
except KeyboardInterrupt:
    pass
finally:
    subprocess._fork_exec = real
try:
    os.kill(started, 0)
    print('alive')
except ProcessLookupError:
    print('gone')
time.sleep(0.5)
"""


def test_a_child_whose_start_a_stop_cut_short_is_ended(server, ctx):
    """A stop that lands as `_fork_exec` returns (or while Popen waits for the child's exec)
    makes `Popen()` raise with no object to kill the child through: the child lived on and wrote
    into later runs (a run with a 1.5 ms timeout: 17 times in 20). Popen now kills it."""
    result = ok(server, STOP_AFTER_THE_FORK, ctx)
    assert result.stdout == "gone\n"
    for _ in range(5):
        with pytest.raises(PyKernelTimeoutError):
            server.run_code("import subprocess\nsubprocess.run(['sh', '-c', 'sleep 0.2; echo LEAK'])", context=ctx,
                            timeout=0.0015)
        assert ok(server, "import time\ntime.sleep(0.3)", ctx).stdout == ""


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_deleting_the_context_of_a_run_in_pool_map_ends_the_run_and_the_workers(server, isolation):
    context = server.create_context(isolation=isolation)
    pids = []
    thread, outcome = run_in_thread(
        server.run_code, STOPPED_POOL, context, on_stdout=lambda message: pids.extend(int(pid) for pid in message.output.split()))
    deadline = time.monotonic() + CALL_DEADLINE
    while not pids and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pids, "the pool did not start"
    server.delete_context(context)
    assert joined(thread, outcome, timeout=CALL_DEADLINE).status == "interrupted"
    assert wait_gone(pids), "the pool's workers outlived their context"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_children_outliving_their_run_end_with_the_context(server, isolation):
    """A Pool left unclosed serves later runs; deleting the context ends its workers. A child
    still running when its run ends does not disturb the runs that follow."""
    context = server.create_context(isolation=isolation)
    result = ok(server, """
import multiprocessing, os, time
pool = multiprocessing.Pool(2)
print(pool.map(abs, [-1]))
if os.fork() == 0:
    time.sleep(0.5)
    os._exit(0)
print(*[worker.pid for worker in pool._pool])
""", context)
    first, workers = result.stdout.splitlines()
    pids = [int(pid) for pid in workers.split()]
    assert first == "[1]" and not any(gone(pid) for pid in pids)
    assert ok(server, "time.sleep(1); print(pool.map(abs, [-2, -3]))", context).stdout == "[2, 3]\n"
    server.delete_context(context)
    assert wait_gone(pids), "the unclosed Pool's workers outlived their context"


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_forked_child_has_none_of_the_servers_descriptors(kernel, isolation):
    """python3's child has only its program's descriptors. One forked in a context kept the
    server's (its protocol output, the read ends of the output pipes, event loops). A fresh
    server: no other context's code has opened files in the process."""
    server = kernel
    context = server.create_context(isolation=isolation)
    code = """
import os
reader, writer = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(reader)
    listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    open_now = []
    for fd in listed:  # the listing's own descriptor is closed by now
        try:
            os.fstat(fd)
            open_now.append(fd)
        except OSError:
            pass
    os.write(writer, " ".join(map(str, sorted(open_now))).encode())
    os._exit(0)
os.close(writer)
with os.fdopen(reader) as child:
    print(child.read(), writer)
os.waitpid(pid, 0)
"""
    *listed, writer = ok(server, code, context).stdout.split()
    assert sorted(int(fd) for fd in listed) == sorted({0, 1, 2, int(writer)})
    server.delete_context(context)


def test_a_forked_child_left_running_does_not_hold_the_clients_end_of_file(pykernel_bin):
    """A child that lives on after the server exits: the client sees the end of the server's
    output when the server exits (the child held the protocol output open)."""
    import json
    import subprocess

    code = "import os, time\npid = os.fork()\nif pid == 0:\n    time.sleep(60)\n    os._exit(0)\nprint(pid)"
    request = {"jsonrpc": "2.0", "id": 1, "method": "code.run", "params": {"code": code}}
    process = subprocess.Popen([pykernel_bin, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    thread, outcome = run_in_thread(process.communicate, (json.dumps(request) + "\n").encode())
    try:
        output, _ = joined(thread, outcome, timeout=CALL_DEADLINE)
    finally:
        process.kill()
    response = json.loads(output.splitlines()[-1])
    child = int(response["result"]["stdout"])
    assert not gone(child), "the child was to live on"
    os.kill(child, signal.SIGKILL)
    assert process.returncode == 0


RACING_FORKS = r"""
import _imp, os, signal, sys, threading, time
# logging's fork hook (before the engine's) takes its lock across a fork: forks would not overlap.
assert "logging" not in sys.modules, "logging was imported before"
def blocks(thread, number):
    with open(f"/proc/self/task/{thread}/status") as status:
        mask = next(line for line in status if line.startswith("SigBlk:")).split()[1]
    return int(mask, 16) >> (number - 1) & 1 == 1
def wait_until(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
interpreter, quiet_thread, arranged = threading.get_native_id(), [], []
def quiet():
    signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.valid_signals()) - {signal.SIGUSR1})
    quiet_thread.append(threading.get_native_id())
    if wait_until(lambda: blocks(interpreter, signal.SIGRTMIN + 3)):  # its fork has begun
        fork()
def hold_import_lock():
    _imp.acquire_lock()
    held.set()
    arranged.append(wait_until(lambda: quiet_thread and blocks(quiet_thread[0], signal.SIGUSR1)))  # so has this one
    _imp.release_lock()
held = threading.Event()
threads = [threading.Thread(target=hold_import_lock), threading.Thread(target=quiet)]
threads[0].start()
held.wait()
threads[1].start()
fork()
for thread in threads:
    thread.join()
print(arranged, len(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
"""


def test_forks_overlapping_on_two_threads_leave_the_interpreter_thread_its_signals(kernel):
    """The engine blocks signals on a forking thread across its fork and restores its mask after.
    CPython lets go of the GIL between those hooks (the interpreter thread's fork waits for the
    import lock here), so another thread can run its fork's hooks meanwhile: with one saved mask
    for the process, a thread that blocked every signal and forked then left the interpreter
    thread with its mask, the stop signal blocked for good (every later run answered as stuck
    after its deadline and the grace period). A fresh server: no logging imported."""
    assert ok(kernel, RACING_FORKS, None).stdout == "[True] 0\n"
    started = time.monotonic()
    with pytest.raises(PyKernelTimeoutError) as stopped:
        run(kernel, "import time\ntime.sleep(5)\n", None, deadline=0.3)
    assert "time.sleep(5)" in stopped.value.result.error.traceback, stopped.value.result.error
    assert time.monotonic() - started < 2, "the timeout was answered as stuck: the stop signal is blocked"


def test_the_server_is_unharmed(server):
    """After every case above: the one server answered everything and still serves."""
    assert server.run_code("print(sum(range(4)))").stdout == "6\n"
