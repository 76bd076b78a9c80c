"""PTY sessions (``pty.*``) through the real ``pykernel serve``, via ``PyKernel.create_pty``.

Every wait is for an event (a marker in the output, an exit), with a deadline; processes left
behind are looked for in /proc by an environment marker every PTY of a test carries."""

import base64
import json
import os
import signal
import subprocess
import threading
import time
import uuid

import pytest

from pykernel import PyKernel
from pykernel.errors import InvalidParamsError, PtyExistsError, PtyExitedError, PtyNotFoundError, PyKernelError


class Terminal:
    """Collects what a PTY writes; ``expect`` waits for a marker."""

    def __init__(self):
        self.data = b""
        self.changed = threading.Condition()

    def __call__(self, chunk):
        with self.changed:
            self.data += chunk
            self.changed.notify_all()

    @property
    def text(self):
        return self.data.decode(errors="replace")

    def expect(self, marker, count=1, timeout=20):
        needle = marker.encode() if isinstance(marker, str) else marker
        with self.changed:
            done = self.changed.wait_for(lambda: self.data.count(needle) >= count, timeout)
        assert done, f"{marker!r} x{count} never came; the terminal shows {self.text!r}"


@pytest.fixture
def pk(pykernel_bin, tmp_path):
    client = PyKernel(pykernel_bin, cwd=str(tmp_path))
    try:
        yield client
    finally:
        client.close()
    assert client.returncode == 0, f"pykernel serve exited with status {client.returncode}"


@pytest.fixture
def mark():
    return uuid.uuid4().hex


def bash(pk, mark, terminal, **kwargs):
    """An interactive bash without start-up files, prompt ``READY> ``."""
    env = {"PS1": "READY> ", "PK_MARK": mark}
    env.update(kwargs.pop("env", {}))
    handle = pk.create_pty(command="bash", args=["--norc", "--noprofile", "-i"], env=env, on_data=terminal, **kwargs)
    terminal.expect("READY> ")
    return handle


def marked_pids(marker):
    """Pids of live processes whose environment contains ``PK_MARK=<marker>``."""
    needle = f"PK_MARK={marker}".encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != b"Z":
            pids.append(int(name))
    return pids


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def terminal_fds(pid):
    """The pseudo-terminal descriptors (``/dev/ptmx``, ``/dev/pts/N``) process ``pid`` holds."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target == "/dev/ptmx" or target.startswith("/dev/pts/"):
            found.append(target)
    return found


def test_bash_typed_to(pk, mark):
    terminal = Terminal()
    handle = bash(pk, mark, terminal)
    assert handle.pid > 0
    handle.send_input("echo $((6*7)); echo $TERM; [[ -t 0 ]] && echo on-a-tty\n")
    terminal.expect("READY> ", count=2)
    assert "42\r\n" in terminal.text
    assert "xterm-256color" in terminal.text
    assert "on-a-tty" in terminal.text
    assert "no job control" not in terminal.text
    info = pk.get_pty(handle.id)
    assert info.is_running and info.pid == handle.pid and info.command.endswith("/bash")
    assert (info.cols, info.rows) == (80, 24)
    handle.send_input("exit 3\n")
    assert handle.wait(timeout=20) == 3
    assert handle.signal is None
    assert pk.get_pty(handle.id).exit_code == 3


def test_stty_size_before_and_after_resize(pk, mark):
    terminal = Terminal()
    handle = bash(pk, mark, terminal, cols=100, rows=30)
    handle.send_input("trap 'echo GOT-WINCH' WINCH; stty size\n")
    terminal.expect("30 100")
    handle.resize(132, 43)
    terminal.expect("GOT-WINCH")
    handle.send_input("stty size\n")
    terminal.expect("43 132")
    info = pk.get_pty(handle.id)
    assert (info.cols, info.rows) == (132, 43)
    handle.kill()
    assert handle.wait(timeout=20) == 137 and handle.signal == 9


def test_ctrl_c_stops_sleep_and_bash_lives_on(pk, mark):
    terminal = Terminal()
    handle = bash(pk, mark, terminal)
    handle.send_input("sleep 100\n")
    assert wait_until(lambda: any(b"sleep" in cmdline(pid) for pid in marked_pids(mark)))
    handle.send_input(b"\x03")
    terminal.expect("READY> ", count=2)
    assert wait_until(lambda: not any(b"sleep" in cmdline(pid) for pid in marked_pids(mark)))
    handle.send_input("echo alive-$? \n")
    terminal.expect("alive-130")
    assert pk.get_pty(handle.id).is_running
    handle.send_input("exit\n")
    assert handle.wait(timeout=20) == 0


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_python_repl(pk):
    terminal = Terminal()
    handle = pk.create_pty(command="python3", args=["-q", "-i"], on_data=terminal)
    terminal.expect(">>> ")
    handle.send_input("print(6 * 7 + 0.5)\n")
    terminal.expect("42.5")
    handle.send_input("import sys; sys.exit(5)\n")
    assert handle.wait(timeout=20) == 5


def test_getpass_in_a_pty_program(pk):
    terminal = Terminal()
    program = "import getpass; secret = getpass.getpass('Password: '); print('length', len(secret))"
    handle = pk.create_pty(command="python3", args=["-c", program], on_data=terminal)
    terminal.expect("Password: ")
    handle.send_input("s3cr3t!\n")
    assert handle.wait(timeout=20) == 0
    assert "length 7" in terminal.text
    assert "s3cr3t" not in terminal.text, "the password was echoed"


def test_kill_ends_the_process_group(pk, mark):
    terminal = Terminal()
    handle = pk.create_pty(
        command="sh", args=["-c", "sleep 7201 & sleep 7202 & echo started; wait"], env={"PK_MARK": mark},
        on_data=terminal,
    )
    terminal.expect("started")
    assert wait_until(lambda: len(marked_pids(mark)) == 3)
    handle.kill("TERM")
    assert handle.wait(timeout=20) == 128 + signal.SIGTERM
    assert handle.signal == signal.SIGTERM
    assert marked_pids(mark) == []
    handle.kill()  # exited: nothing happens


def test_kill_takes_every_signal_name_kill_l_lists(pk):
    """`pty.kill`'s `signal` by any name (with or without SIG, any case) and the real-time ones as
    RTMIN+n / RTMAX-n: SEGV, ABRT, XCPU, ... were refused as unknown while their numbers worked."""
    for name, number in [("SEGV", signal.SIGSEGV), ("SIGABRT", signal.SIGABRT), ("xcpu", signal.SIGXCPU),
                         ("SIGSYS", signal.SIGSYS), ("RTMIN+2", signal.SIGRTMIN + 2), ("RTMAX", signal.SIGRTMAX)]:
        handle = pk.create_pty(command="sleep", args=["30"])
        handle.kill(name)
        assert handle.wait(timeout=20) == 128 + number, name
        assert handle.signal == number, name
    for name in ("NOPE", "RTMIN+99", "RTMAX+1", "RTMIN-1", "SIG"):
        with pytest.raises(InvalidParamsError) as unknown:
            pk.call("pty.kill", {"id": handle.id, "signal": name})
        assert unknown.value.field == "signal", name


def test_a_burst_of_short_ptys_keeps_the_256_most_recent_exited_ones(pk):
    """pty.md: the server keeps the 256 most recent exited PTYs. A burst of 300 that all exit
    before the next `pty.create` kept all 300 (the older ones were let go at a creation only)."""
    handles = [pk.create_pty(id=f"burst{index}", command="true") for index in range(300)]
    for handle in handles:
        handle.wait(timeout=30)
    listed = [info.id for info in pk.list_ptys()]
    assert listed == [f"burst{index}" for index in range(44, 300)]
    with pytest.raises(PyKernelError) as forgotten:
        pk.get_pty("burst0")
    assert forgotten.value.code == -32017
    assert pk.get_pty("burst299").exit_code == 0


def test_twenty_ptys_leave_nothing_behind(pk, mark):
    server = pk.pid
    # The SIGTERM, SIGINT and SIGHUP sources are registered by the dispatch library after the
    # server starts answering (one signalfd each): wait for them before taking the snapshot.
    assert wait_until(lambda: sum(target == "anon_inode:[signalfd]" for _, target in server_fds(server)) == 3)
    # The process API's keeper starts with its first process and lives as long as the server.
    assert pk.exec("true").exit_code == 0
    # That process's pidfd is closed just after its result is answered: a snapshot taken before
    # held it (CI, 1 in 15 here), and no later state could equal it.
    assert wait_until(lambda: all(target != "anon_inode:[pidfd]" for _, target in server_fds(server)))
    fds_before = server_fds(server)
    for round in range(20):
        terminal = Terminal()
        handle = bash(pk, mark, terminal, id=f"p{round}")
        handle.send_input("sleep 7203 &\n")
        terminal.expect("READY> ", count=2)
        if round % 2:
            handle.kill()
        else:
            handle.send_input("exit\n")
        handle.wait(timeout=20)
    assert marked_pids(mark) == []
    assert terminal_fds(server) == []
    assert wait_until(lambda: server_fds(server) == fds_before), server_fds(server) ^ fds_before
    children = [pid for pid in os.listdir("/proc") if pid.isdigit() and parent_of(pid) == server
                and not is_group_keeper(pid)]
    assert children == [], f"children of the server left: {children}"
    assert [info.id for info in pk.list_ptys()] == [f"p{n}" for n in range(20)]


def server_fds(server):
    """The server's descriptors and what they are, but the timers the dispatch library opens
    once and keeps (one per clock, ``anon_inode:[timerfd]``)."""
    fds = set()
    for fd in os.listdir(f"/proc/{server}/fd"):
        try:
            target = os.readlink(f"/proc/{server}/fd/{fd}")
        except OSError:
            continue
        if target != "anon_inode:[timerfd]":
            fds.add((fd, target))
    return fds


def is_group_keeper(pid):
    """Whether ``pid`` is the process API's keeper (see docs/process-api.md, "When the server ends")."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().endswith(b"\0pykernel-group-keeper\0")
    except OSError:
        return False


def parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def test_lots_of_output_arrives_whole_and_in_order(pk):
    terminal = Terminal()
    program = "import sys\nfor i in range(200000): sys.stdout.write(f'{i:07d}\\n')\nprint('END')"
    handle = pk.create_pty(command="python3", args=["-c", program], on_data=terminal)
    assert handle.wait(timeout=60) == 0
    lines = terminal.data.split(b"\r\n")
    assert lines[:-2] == [b"%07d" % i for i in range(200000)]
    assert lines[-2:] == [b"END", b""]


def test_a_failed_create_with_a_running_ptys_id_takes_none_of_its_output(pk):
    """The client registered the new handle first: a `pty.create` refused (-32018) because a
    PTY of that id still ran took that PTY's output and its exit while it was in flight (the
    running handle lost lines, and its wait() never returned)."""
    got = []
    running = pk.create_pty(id="dup", command="sh", args=["-c", "for i in $(seq 500); do echo L$i; done; sleep 0.3"],
                            on_data=got.append)
    refused = 0
    while True:
        try:
            successor = pk.create_pty(id="dup", command="true")
            break
        except PyKernelError as error:
            assert error.code == -32018
            refused += 1
    assert running.wait(timeout=10) == 0
    assert b"".join(got).replace(b"\r", b"").count(b"\n") == 500 and refused > 0
    assert successor.wait(timeout=10) == 0


def test_bad_input_is_a_clear_error_and_affects_nothing(pk, mark, tmp_path):
    terminal = Terminal()
    handle = bash(pk, mark, terminal, id="keep")

    # Each PTY error has its class (they came back as bare PyKernelError).
    with pytest.raises(PtyNotFoundError) as unknown:
        pk.call("pty.input", {"id": "nope", "text": "x"})
    assert (unknown.value.code, unknown.value.reason) == (-32017, "pty_not_found")
    with pytest.raises(PtyExistsError) as duplicate:
        pk.create_pty(id="keep", command="bash")
    assert (duplicate.value.code, duplicate.value.reason) == (-32018, "pty_exists")
    for params, field in [
        ({"id": "x", "cols": 0}, "cols"),
        ({"id": "x", "rows": 10001}, "rows"),
        ({"id": "x", "cols": "wide"}, "cols"),
        ({"id": "x", "cwd": "missing"}, "cwd"),
        ({"id": "", "command": "sh"}, "id"),
    ]:
        with pytest.raises(InvalidParamsError) as invalid:
            pk.call("pty.create", params)
        assert invalid.value.field == field, params
        assert invalid.value.reason in ("invalid_argument", "invalid_cwd")
    with pytest.raises(InvalidParamsError) as size:
        pk.call("pty.resize", {"id": "keep", "cols": 10001, "rows": 5})
    assert size.value.field == "cols"
    with pytest.raises(InvalidParamsError) as b64:
        pk.call("pty.input", {"id": "keep", "data": "not base64!"})
    assert (b64.value.reason, b64.value.field) == ("invalid_argument", "data")
    with pytest.raises(InvalidParamsError) as neither:
        pk.call("pty.input", {"id": "keep"})
    assert neither.value.field == "data"
    with pytest.raises(InvalidParamsError) as bad_signal:
        pk.call("pty.kill", {"id": "keep", "signal": "NOPE"})
    assert bad_signal.value.field == "signal"

    zombies_before = zombie_children(pk.pid)
    with pytest.raises(PyKernelError) as missing:
        pk.create_pty(command="no-such-program-anywhere")
    assert (missing.value.code, missing.value.reason, missing.value.field) == (-32016, "spawn_failed", "command")
    (tmp_path / "not-a-program").write_text("hello\n")
    (tmp_path / "not-a-program").chmod(0o755)
    with pytest.raises(PyKernelError) as failed_exec:
        pk.create_pty(command="./not-a-program")
    assert failed_exec.value.reason == "spawn_failed"
    assert zombie_children(pk.pid) == zombies_before == []

    # The running PTY noticed nothing.
    handle.send_input(base64.b64decode(base64.b64encode(b"echo still-fine\n")))
    terminal.expect("still-fine\r\n")
    assert [info.id for info in pk.list_ptys()] == ["keep"]
    handle.send_input("exit 0\n")
    handle.wait(timeout=20)
    with pytest.raises(PtyExitedError) as exited:
        handle.send_input("late\n")
    assert (exited.value.code, exited.value.reason) == (-32019, "pty_exited")


def zombie_children(server):
    zombies = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) == server:
            zombies.append(int(name))
    return zombies


@pytest.mark.parametrize("ending", ["end_of_input", "sigterm", "shutdown"])
def test_the_server_ending_ends_every_pty(pykernel_bin, tmp_path, mark, ending):
    client = PyKernel(pykernel_bin, cwd=str(tmp_path))
    try:
        for n in range(3):
            terminal = Terminal()
            handle = bash(client, mark, terminal)
            # One job ignores the hang-up (SIGKILL after the grace period ends it anyway), one left
            # the terminal's session (found by the PTY's tag in its environment).
            handle.send_input("trap '' HUP; sleep 7204 & setsid sleep 7205 &\n")
            terminal.expect("READY> ", count=2)
        assert wait_until(lambda: len([p for p in marked_pids(mark) if cmdline(p).startswith(b"sleep")]) == 6)
        if ending == "sigterm":
            os.kill(client.pid, signal.SIGTERM)
        elif ending == "shutdown":
            client.call("shutdown")
    finally:
        client.close()
    assert client.returncode == 0
    assert marked_pids(mark) == []


def test_raw_transcript(pykernel_bin, tmp_path):
    """The wire as docs/pty.md shows it: responses, pty.output (base64) and pty.exited."""
    server = subprocess.Popen(
        [pykernel_bin, "serve"], cwd=str(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        def send(message):
            server.stdin.write((json.dumps(message) + "\n").encode())
            server.stdin.flush()

        send({"jsonrpc": "2.0", "id": 1, "method": "pty.create",
              "params": {"id": "t1", "command": "sh", "args": ["-c", "read line; echo got $line; exit 7"]}})
        created = json.loads(server.stdout.readline())
        assert created["id"] == 1 and created["result"]["id"] == "t1"
        assert isinstance(created["result"]["pid"], int) and created["result"]["pid"] > 1
        send({"jsonrpc": "2.0", "id": 2, "method": "pty.input", "params": {"id": "t1", "text": "hi\n"}})
        output = b""
        exited = None
        while exited is None:
            message = json.loads(server.stdout.readline())
            if message.get("method") == "pty.output":
                assert message["params"]["id"] == "t1"
                output += base64.b64decode(message["params"]["data"])
            elif message.get("method") == "pty.exited":
                exited = message["params"]
            else:
                assert message == {"jsonrpc": "2.0", "id": 2, "result": {}}
        assert output == b"hi\r\ngot hi\r\n"
        assert exited == {"id": "t1", "exit_code": 7, "signal": None}
    finally:
        server.stdin.close()
        assert server.wait(20) == 0


def test_the_create_response_comes_before_the_first_output(pykernel_bin, tmp_path):
    """A program that writes at once (here before the server could answer) still has its
    ``pty.create`` response first, so a client may learn the id from it."""
    server = subprocess.Popen(
        [pykernel_bin, "serve"], cwd=str(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        for round in range(20):
            request = {"jsonrpc": "2.0", "id": round, "method": "pty.create",
                       "params": {"command": "sh", "args": ["-c", "echo early"]}}
            server.stdin.write((json.dumps(request) + "\n").encode())
            server.stdin.flush()
            first = json.loads(server.stdout.readline())
            assert first.get("id") == round and "result" in first, first
            while json.loads(server.stdout.readline()).get("method") != "pty.exited":
                pass
    finally:
        server.stdin.close()
        assert server.wait(20) == 0


def test_a_client_that_does_not_read_stops_the_program_and_loses_nothing(pykernel_bin, tmp_path, mark):
    """Back-pressure end to end: the server's stdout pipe fills, then its outgoing queue, then the
    PTY's buffer; the server stops reading the terminal and the program blocks in its writes.
    Once the client reads again, every byte arrives, in order."""
    server = subprocess.Popen(
        [pykernel_bin, "serve"], cwd=str(tmp_path), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        server.stdin.write(b'{"jsonrpc":"2.0","id":0,"method":"kernel.info"}\n')
        server.stdin.flush()
        assert json.loads(server.stdout.readline())["id"] == 0
        rss_before = resident_kib(server.pid)
        program = "import sys\nfor i in range(40): sys.stdout.buffer.write(b'%c' % (65 + i % 26) * 1000000); sys.stdout.flush()\nprint('END')"
        request = {"jsonrpc": "2.0", "id": 1, "method": "pty.create",
                   "params": {"id": "big", "command": "python3", "args": ["-c", program], "env": {"PK_MARK": mark}}}
        server.stdin.write((json.dumps(request) + "\n").encode())
        server.stdin.flush()
        assert wait_until(lambda: len(marked_pids(mark)) == 1)
        (writer,) = marked_pids(mark)

        def written():
            with open(f"/proc/{writer}/io") as f:
                return int(next(line for line in f if line.startswith("wchar:")).split()[1])

        def stalled():
            # Blocked in its write to the terminal, and still there half a second later (there is
            # no event for "nothing happens": this is the property itself).
            before = written()
            with open(f"/proc/{writer}/wchan") as f:
                if f.read() != "wait_woken":
                    return False
            time.sleep(0.5)
            return written() == before

        assert wait_until(stalled, timeout=30), written()
        stalled_at = written()
        assert all(pid == writer for pid in marked_pids(mark)), "the program ended: nothing held it back"
        assert stalled_at < 20_000_000
        assert resident_kib(server.pid) - rss_before < 40_000, "the server buffered what the client did not read"

        output = bytearray()
        exited = None
        while exited is None:
            message = json.loads(server.stdout.readline())
            if message.get("method") == "pty.output":
                output += base64.b64decode(message["params"]["data"])
            elif message.get("method") == "pty.exited":
                exited = message["params"]
        assert exited == {"id": "big", "exit_code": 0, "signal": None}
        expected = b"".join(b"%c" % (65 + i % 26) * 1000000 for i in range(40)) + b"END\r\n"
        assert len(output) == len(expected)
        assert output == expected
    finally:
        server.stdin.close()
        server.stdout.read()
        assert server.wait(20) == 0


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def test_inputs_are_written_in_the_order_they_arrive(pk, tmp_path):
    """Keystrokes sent without waiting (as notifications, the way a terminal UI types) reach the
    program in order, whatever order the server's tasks run in."""
    terminal = Terminal()
    handle = pk.create_pty(
        command="sh", args=["-c", "stty raw -echo; echo ready; head -c 3000 > typed.txt; echo done"], on_data=terminal,
    )
    terminal.expect("ready")
    keys = "".join(chr(ord("a") + (i * 7) % 26) for i in range(3000))
    for key in keys[:-1]:
        pk.notify("pty.input", {"id": handle.id, "text": key})
    handle.send_input(keys[-1])
    assert handle.wait(timeout=30) == 0
    assert (tmp_path / "typed.txt").read_text() == keys


def test_at_most_1_mib_of_input_waits_whatever_the_size_of_one_input(pykernel_bin, tmp_path):
    """One `pty.input` over 1 MiB to a raw-mode program that does not read was answered `{}` at
    once with all of it waiting (only a later input waited for room), though at most 1 MiB of
    input waits per PTY. Now the part that does not fit is queued as the program reads, and the
    answer comes once the last byte is queued."""
    from pykernel_raw import RawServer
    server = RawServer(pykernel_bin, cwd=str(tmp_path))

    def shows(marker):
        data = b"".join(base64.b64decode(m["params"]["data"]) for m in server.messages_since(0)
                        if m.get("method") == "pty.output")
        return marker in data

    try:
        script = ("stty raw -echo; echo ready; until [ -e go ]; do sleep 0.01; done; head -c 100000 > /dev/null; "
                  "echo consumed; until [ -e go-on ]; do sleep 0.01; done; exec cat > /dev/null")
        server.result("pty.create", {"id": "slow", "command": "sh", "args": ["-c", script]})
        server.wait_until(lambda _: shows(b"ready"), what="the program's ready")
        typed = server.request("pty.input", {"id": "slow", "text": "a" * (3 << 19)})  # 1.5 MiB
        (tmp_path / "go").touch()
        # The program has read 100 KB of it: not yet room for the rest (some 0.4 MiB) to wait.
        server.wait_until(lambda _: shows(b"consumed"), what="the program's first read")
        assert not any(m.get("id") == typed for m in server.messages_since(0)), "answered with more than 1 MiB waiting"
        (tmp_path / "go-on").touch()
        assert server.response(typed)["result"] == {}
        assert server.result("pty.kill", {"id": "slow"}) == {}
    finally:
        server.kill()


def test_end_of_input_with_input_the_program_never_read(pykernel_bin, tmp_path, mark):
    """Input a program does not read is queued (answered at once); the end of the server's input
    still ends the program."""
    client = PyKernel(pykernel_bin, cwd=str(tmp_path))
    try:
        handle = client.create_pty(command="sleep", args=["7206"], env={"PK_MARK": mark})
        handle.send_input("x" * 99 + "\n" * 3000)
        handle.send_input(b"y" * 300_000)
        assert marked_pids(mark) == [handle.pid]
    finally:
        client.close()
    assert client.returncode == 0
    assert marked_pids(mark) == []


def test_a_pty_created_and_used_in_one_write(pykernel_bin):
    """`pty.create` then `pty.input` (or `pty.kill`) of it, written at once: answered
    `pty_not_found` (20 times in 20) and the PTY was left running. It starts as its request is
    read."""
    from pykernel_raw import RawServer
    server = RawServer(pykernel_bin)
    try:
        typed_to = server.request("pty.create", {"id": "typed-to", "command": "sh"})
        typed = server.request("pty.input", {"id": "typed-to", "text": "exit 3\n"})
        killed = server.request("pty.create", {"id": "killed", "command": "sh"})
        kill = server.request("pty.kill", {"id": "killed"})
        assert server.response(typed_to)["result"]["id"] == "typed-to"
        assert server.response(typed) == {"jsonrpc": "2.0", "id": typed, "result": {}}
        assert server.response(killed)["result"]["id"] == "killed"
        assert server.response(kill)["result"] == {}
        for id, code in (("typed-to", 3), ("killed", 137)):
            exited = server.wait_for(lambda m: m.get("method") == "pty.exited" and m["params"].get("id") == id,
                                     what=f"the exit of PTY {id}")
            assert exited["params"]["exit_code"] == code
    finally:
        server.kill()
