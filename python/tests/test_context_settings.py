"""Process settings a context keeps as its own, or shares, against the real ``pykernel serve``.

The working directory is per context, also when a thread of one context changes it while
another context runs or between runs (the change is charged to the thread's context).
"""

import os
import threading

import pytest


@pytest.fixture(scope="module")
def server(module_kernel):
    return module_kernel


def ok(server, code, context=None, **options):
    result = server.run_code(code, context, timeout=30, **options)
    assert result.status == "ok", (result.status, result.stderr, result.error)
    return result


def listed_cwd(server, context):
    return {item.id: item.cwd for item in server.list_contexts()}[context.id]


@pytest.fixture
def directories(tmp_path):
    made = {}
    for name in ("a", "b", "thread"):
        made[name] = tmp_path / name
        made[name].mkdir()
    return {name: os.path.realpath(path) for name, path in made.items()}


def test_a_threads_chdir_during_another_contexts_run_is_its_contexts(server, directories):
    """A thread of context A moves to another directory while B runs: B's code goes on in its own
    directory (the engine puts it back before the thread's call returns), B keeps its directory,
    and A's is the thread's new one (its next run starts there)."""
    a = server.create_context(cwd=directories["a"])
    b = server.create_context(cwd=directories["b"])
    try:
        ok(server, "import os, sys, threading, types\n"
                   "steps = sys.modules['pk_cwd_steps'] = types.SimpleNamespace(go=threading.Event(), done=threading.Event())\n"
                   "def move():\n"
                   "    steps.go.wait()\n"
                   f"    os.chdir({directories['thread']!r})\n"
                   "    steps.seen_by_thread = os.getcwd()\n"
                   "    steps.done.set()\n"
                   "threading.Thread(target=move).start()\n", a)
        during = ok(server, "import os, sys\n"
                            "steps = sys.modules.pop('pk_cwd_steps')\n"
                            "steps.go.set()\n"
                            "assert steps.done.wait(20)\n"
                            "print(os.getcwd())\n"
                            "print(steps.seen_by_thread)\n", b)
        # The running context's directory, which the thread then shares as every thread does.
        assert during.stdout == f"{directories['b']}\n{directories['b']}\n"
        assert ok(server, "import os; print(os.getcwd())", b).stdout == f"{directories['b']}\n"
        assert listed_cwd(server, b) == directories["b"]
        assert listed_cwd(server, a) == directories["thread"]
        assert ok(server, "import os; print(os.getcwd())", a).stdout == f"{directories['thread']}\n"
    finally:
        server.delete_context(a)
        server.delete_context(b)


def fifo_steps(tmp_path):
    """Two FIFOs: ``go`` (the test opens it to let the thread go on) and ``done`` (the thread
    writes it after its change; the test's read returns then)."""
    go, done = str(tmp_path / "go"), str(tmp_path / "done")
    os.mkfifo(go)
    os.mkfifo(done)
    return go, done


def release_and_wait(go, done):
    """Lets the waiting thread go on and returns what it wrote once it has (no sleep: the FIFOs
    block until the other side opens them)."""
    outcome = {}

    def read_done():
        with open(done) as reader:
            outcome["text"] = reader.read()

    reader = threading.Thread(target=read_done)
    reader.start()
    with open(go, "w") as writer:
        writer.write("go")
    reader.join(30)
    assert not reader.is_alive(), "the thread never wrote its step"
    return outcome["text"]


WAITING_THREAD = (
    "import os, threading\n"
    "def change():\n"
    "    with open({go!r}) as go:\n"
    "        go.read()\n"
    "    {change}\n"
    "    with open({done!r}, 'w') as done:\n"
    "        done.write({report})\n"
    "threading.Thread(target=change).start()\n"
)


def test_a_threads_chdir_between_runs_is_its_contexts(server, directories, tmp_path):
    """A thread of A moves between runs, after C ran last: C's next run still starts in C's
    directory (the engine does not trust its note of where the process is), A's is the new one."""
    go, done = fifo_steps(tmp_path)
    a = server.create_context(cwd=directories["a"])
    c = server.create_context(cwd=directories["b"])
    try:
        ok(server, WAITING_THREAD.format(go=go, done=done, change=f"os.chdir({directories['thread']!r})",
                                         report="os.getcwd()"), a)
        ok(server, "pass", c)
        assert release_and_wait(go, done) == directories["thread"]
        assert ok(server, "import os; print(os.getcwd())", c).stdout == f"{directories['b']}\n"
        assert listed_cwd(server, a) == directories["thread"]
        assert ok(server, "import os; print(os.getcwd())", a).stdout == f"{directories['thread']}\n"
        assert listed_cwd(server, c) == directories["b"]
    finally:
        server.delete_context(a)
        server.delete_context(c)


def test_a_threads_chdir_in_a_process_context_moves_its_process(server, directories, tmp_path):
    """A process context's process is its own: its thread's change is the context's, during its
    run (the code then goes on there, as in python3) and between runs."""
    go, done = fifo_steps(tmp_path)
    context = server.create_context(cwd=directories["a"], isolation="process")
    try:
        during = ok(server, "import os, threading\n"
                            f"mover = threading.Thread(target=os.chdir, args=({directories['thread']!r},))\n"
                            "mover.start(); mover.join()\n"
                            "print(os.getcwd())\n", context)
        assert during.stdout == f"{directories['thread']}\n"
        ok(server, WAITING_THREAD.format(go=go, done=done, change=f"os.chdir({directories['b']!r})",
                                         report="os.getcwd()"), context)
        assert release_and_wait(go, done) == directories["b"]
        assert ok(server, "import os; print(os.getcwd())", context).stdout == f"{directories['b']}\n"
    finally:
        server.delete_context(context)


def test_the_threads_chdir_and_fchdir_pass_for_the_originals(server):
    """The wrappers keep the names, keyword parameters and errors of ``os.chdir`` and ``os.fchdir``,
    and ``os.chdir`` is still listed in ``os.supports_fd``, from any thread."""
    code = ("import os, threading\n"
            "seen = []\n"
            "def use():\n"
            "    here = os.open('.', os.O_RDONLY)\n"
            "    os.chdir(path='/')\n"
            "    os.fchdir(fd=here)\n"
            "    os.chdir(here)\n"
            "    os.close(here)\n"
            "    try:\n"
            "        os.chdir('/no/such/directory')\n"
            "    except FileNotFoundError as error:\n"
            "        seen.append(str(error))\n"
            "    seen.append((os.chdir.__name__, os.fchdir.__name__, os.chdir in os.supports_fd))\n"
            "mover = threading.Thread(target=use)\n"
            "mover.start(); mover.join()\n"
            "use()\n"
            "print(seen)\n")
    context = server.create_context()
    try:
        missing = "[Errno 2] No such file or directory: '/no/such/directory'"
        expected = [missing, ("chdir", "fchdir", True)] * 2
        assert ok(server, code, context).stdout == f"{expected}\n"
    finally:
        server.delete_context(context)
