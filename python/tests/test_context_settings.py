"""Process settings a context keeps as its own, or shares, against the real ``pykernel serve``.

The working directory and the umask are per context, also when a thread of one context changes
them while another context runs or between runs (the change is charged to the thread's context);
the processes the server starts keep the server's; the nice value is shared; the process's user
and groups cannot be changed from a namespace context.
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


# Code that loads ``os`` anew first: the engine's wrappers live in ``posix``, which it copies.
RELOADS = {"os": "", "reloaded os": "import importlib, os\nos = importlib.reload(os)\n"}


@pytest.mark.parametrize("reload", RELOADS)
def test_a_threads_chdir_during_another_contexts_run_is_its_contexts(server, directories, reload):
    """A thread of context A moves to another directory while B runs: B's code goes on in its own
    directory (the engine puts it back before the thread's call returns), B keeps its directory,
    and A's is the thread's new one (its next run starts there)."""
    a = server.create_context(cwd=directories["a"])
    b = server.create_context(cwd=directories["b"])
    try:
        ok(server, RELOADS[reload] + "import os, sys, threading, types\n"
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


def process_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_umask_is_per_context(server, tmp_path):
    """``os.umask`` in one namespace context is that context's: another context's files keep the
    server's umask (a umask of 0o777 left by one context made every other context's files mode
    000), and the context gets its own back in its next run."""
    server_mask = process_umask()
    a, b = server.create_context(cwd=tmp_path), server.create_context(cwd=tmp_path)
    try:
        assert ok(server, "import os\nprint(oct(os.umask(0o777)))", a).stdout == f"{oct(server_mask)}\n"
        made = ok(server, "import os\nopen('b-file', 'w').close()\nprint(oct(os.stat('b-file').st_mode & 0o777), oct(os.umask(0o022)))", b)
        assert made.stdout == f"{oct(0o666 & ~server_mask)} {oct(server_mask)}\n"
        assert ok(server, "import os\nprint(oct(os.umask(0o027)))", a).stdout == "0o777\n"
        assert ok(server, "import os\nprint(oct(os.umask(0o027)))", a).stdout == "0o27\n"
    finally:
        server.delete_context(a)
        server.delete_context(b)


def test_a_threads_umask_is_its_contexts(server, tmp_path):
    """A thread of A sets the umask while B runs: B's files keep B's umask, A's next run has the
    thread's; ``os.umask`` still returns the process's mask before the call, as python3's."""
    a, b = server.create_context(cwd=tmp_path), server.create_context(cwd=tmp_path)
    try:
        ok(server, "import os, sys, threading, types\n"
                   "os.umask(0o022)\n"
                   "steps = sys.modules['pk_umask_steps'] = types.SimpleNamespace(go=threading.Event(), done=threading.Event())\n"
                   "def set_mask():\n"
                   "    steps.go.wait()\n"
                   "    steps.returned = os.umask(0o077)\n"
                   "    steps.done.set()\n"
                   "threading.Thread(target=set_mask).start()\n", a)
        during = ok(server, "import os, sys\n"
                            "os.umask(0o002)\n"
                            "steps = sys.modules.pop('pk_umask_steps')\n"
                            "steps.go.set()\n"
                            "assert steps.done.wait(20)\n"
                            "open('b-file', 'w').close()\n"
                            "print(oct(os.stat('b-file').st_mode & 0o777), oct(steps.returned))\n", b)
        assert during.stdout == "0o664 0o2\n"
        assert ok(server, "import os\nprint(oct(os.umask(0o022)))", a).stdout == "0o77\n"
        assert ok(server, "import os\nprint(oct(os.umask(0o022)))", b).stdout == "0o2\n"
    finally:
        server.delete_context(a)
        server.delete_context(b)


class Terminal:
    """What a PTY writes, waited for line by line."""

    def __init__(self):
        self.text = ""
        self.changed = threading.Condition()

    def __call__(self, data):
        with self.changed:
            self.text += data.decode(errors="replace")
            self.changed.notify_all()

    def first_line(self, timeout=20):
        with self.changed:
            assert self.changed.wait_for(lambda: "\n" in self.text, timeout), self.text
            return self.text.split("\n")[0].strip()


def umasks_of_the_servers_processes(server):
    """The umask of a command, a session's command, a PTY and a new process context."""
    found = {"exec": server.exec("umask").stdout.strip()}
    session = f"umask-{os.getpid()}-{threading.get_ident()}"
    server.create_session(session)
    try:
        found["session"] = server.execute_session_command(session, "umask").stdout.strip()
    finally:
        server.delete_session(session)
    terminal = Terminal()
    pty = server.create_pty(command="/bin/sh", args=["-c", "umask"], on_data=terminal)
    assert pty.wait(timeout=20) == 0
    found["pty"] = terminal.first_line()
    context = server.create_context(isolation="process")
    try:
        found["process context"] = ok(server, "import os\nprint(f'{os.umask(0o022):04o}')", context).stdout.strip()
    finally:
        server.delete_context(context)
    return found


def test_processes_the_server_starts_keep_its_umask(kernel, tmp_path):
    """``process.exec``, sessions, PTYs and process contexts get the server's umask, not that of a
    namespace context: neither while that context's run is in progress nor after it (the
    interpreter thread has a working directory and umask of its own, unshare(CLONE_FS))."""
    expected = f"{process_umask():04o}"
    ready, go = fifo_steps(tmp_path)
    context = kernel.create_context()
    outcome = {}
    code = ("import os\n"
            "os.umask(0o077)\n"
            f"with open({ready!r}, 'w') as ready:\n"
            "    ready.write('set')\n"
            f"with open({go!r}) as go:\n"
            "    go.read()\n")
    runner = threading.Thread(target=lambda: outcome.update(result=kernel.run_code(code, context, timeout=60)))
    runner.start()
    try:
        with open(ready) as reader:
            assert reader.read() == "set"
        during = umasks_of_the_servers_processes(kernel)
    finally:
        with open(go, "w") as writer:
            writer.write("go")
        runner.join(30)
    assert outcome["result"].status == "ok", outcome["result"].error
    assert during == dict.fromkeys(during, expected)
    # Between runs the interpreter keeps the umask of the context that ran last; not the others.
    assert umasks_of_the_servers_processes(kernel) == dict.fromkeys(during, expected)
    assert ok(kernel, "import os\nprint(oct(os.umask(0o022)))", context).stdout == "0o77\n"


IDENTITY_CALLS = {
    "setuid": "os.getuid()", "setgid": "os.getgid()", "seteuid": "os.geteuid()", "setegid": "os.getegid()",
    "setreuid": "-1, -1", "setregid": "-1, -1", "setresuid": "-1, -1, -1", "setresgid": "-1, -1, -1",
    "setgroups": "os.getgroups()", "initgroups": "pwd.getpwuid(os.getuid()).pw_name, os.getgid()",
}


def identity_probes(report):
    """A program calling each of IDENTITY_CALLS with arguments that change nothing; ``report`` is
    what it prints for the ``OSError`` as ``error``."""
    return "import os, pwd\n" + "".join(
        f"try:\n    os.{name}({arguments})\n    print({name!r}, 'ok')\n"
        f"except OSError as error:\n    print({name!r}, {report})\n"
        for name, arguments in IDENTITY_CALLS.items())


@pytest.mark.parametrize("reload", RELOADS)
def test_a_namespace_context_cannot_change_the_servers_user_or_groups(server, reload):
    """``os.setuid`` and the like would change the user of every context, of ``process.exec``,
    sessions, PTYs and the process contexts started afterwards: ``PermissionError`` naming process
    contexts (as ``os.setsid``), even for a call that would change nothing; a child the code
    forked may call them."""
    context = server.create_context()
    try:
        report = ("type(error).__name__, error.errno, "
                  "f'would change the user or groups' in str(error) and 'process context' in str(error)")
        result = ok(server, RELOADS[reload] + identity_probes(report), context)
        assert result.stdout.splitlines() == [f"{name} PermissionError 1 True" for name in IDENTITY_CALLS]
        child = ok(server, "import os\n"
                           "pid = os.fork()\n"
                           "if pid == 0:\n"
                           "    os.setgid(os.getgid())\n"
                           "    os.setuid(os.getuid())\n"
                           "    os._exit(0)\n"
                           "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n", context)
        assert child.stdout == "0\n"
    finally:
        server.delete_context(context)


def test_a_process_context_changes_its_user_and_groups_as_python3(server):
    """A process context's process is its own: the calls work as in python3."""
    import subprocess
    probes = identity_probes("type(error).__name__, error.errno")
    expected = subprocess.run(["/usr/bin/python3.11", "-c", probes], capture_output=True, text=True, timeout=60)
    assert expected.returncode == 0, expected.stderr
    context = server.create_context(isolation="process")
    try:
        assert ok(server, probes, context).stdout == expected.stdout
    finally:
        server.delete_context(context)


def test_nice_is_shared_and_the_servers_processes_keep_the_servers(kernel):
    """A nice value is a thread's on Linux: ``os.nice`` in a namespace context sets the interpreter
    thread's, which every namespace context's runs then have (documented as shared; it cannot be
    lowered back without privilege). The processes the server starts keep the server's, also when
    the code changed the main thread's (``os.setpriority(PRIO_PROCESS, os.getpid(), n)``)."""
    server_nice = os.getpriority(os.PRIO_PROCESS, 0)
    a, b = kernel.create_context(), kernel.create_context()
    ok(kernel, "import os\nos.nice(3)\nos.setpriority(os.PRIO_PROCESS, os.getpid(), os.nice(0) + 2)", a)
    assert ok(kernel, "import os\nprint(os.nice(0))", b).stdout == f"{server_nice + 3}\n"
    assert kernel.exec("nice").stdout == f"{server_nice}\n"
    terminal = Terminal()
    pty = kernel.create_pty(command="/bin/sh", args=["-c", "nice"], on_data=terminal)
    assert pty.wait(timeout=20) == 0
    assert terminal.first_line() == f"{server_nice}"


def test_a_directory_whose_name_is_not_utf8_entered_by_the_code_stays_its_contexts(server, tmp_path):
    """`os.chdir(b'dir\\xfe')`: the context's next run, after another context's, is there again
    (its directory was kept as text, U+FFFD for the byte, which names no directory: the run was
    refused with invalid_cwd); the wire shows that text."""
    directory = os.fsencode(tmp_path) + b"/dir\xfe"
    os.mkdir(directory)
    context = server.create_context()
    try:
        ok(server, f"import os; os.chdir({directory!r})", context)
        assert listed_cwd(server, context) == f"{tmp_path}/dir\ufffd"
        ok(server, "import os; os.getcwd()")
        assert ok(server, "import os; print(repr(os.getcwd()))", context).stdout == f"{os.fsdecode(directory)!r}\n"
    finally:
        server.delete_context(context)


def test_a_server_started_in_a_directory_whose_name_is_not_utf8_works_there(pykernel_bin, tmp_path):
    """A server started in `dir\\xff` (it refused to start: invalid_cwd) runs its contexts there,
    as python3 would run (`os.getcwd()` ends with `'dir\\udcff'`): the default context, one
    created without `cwd`, one created in a directory relative to it, a process context (also
    after a restart) and a process started by the process API. The wire shows the name's text,
    U+FFFD where a byte is not UTF-8."""
    from pykernel import PyKernel

    directory = os.fsencode(tmp_path) + b"/dir\xff"
    os.makedirs(directory + b"/sub")
    expected = os.fsdecode(directory)
    client = PyKernel(pykernel_bin, cwd=directory)
    try:
        where = "import os; print(repr(os.getcwd()))"
        assert ok(client, where).stdout == f"{expected!r}\n"
        created = client.create_context()
        assert created.cwd == f"{tmp_path}/dir\ufffd"
        assert ok(client, where, created).stdout == f"{expected!r}\n"
        below = client.create_context(cwd="sub")
        assert ok(client, where, below).stdout == f"{expected + '/sub'!r}\n"
        assert ok(client, where, created).stdout == f"{expected!r}\n"
        process = client.create_context(isolation="process")
        assert ok(client, where, process).stdout == f"{expected!r}\n"
        process = client.restart_context(process)
        assert ok(client, where, process).stdout == f"{expected!r}\n"
        started = client.call("process.exec", {"command": "pwd -P | od -An -c"})
        assert (started["exit_code"], started["stdout"].split()[-3:]) == (0, ["r", "377", "\\n"]), started
    finally:
        client.close()
    assert client.returncode == 0

