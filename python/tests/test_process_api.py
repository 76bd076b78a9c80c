"""The process API (``process.exec``, ``process.code_run``, ``session.*``) through the real
``pykernel serve``, via ``pykernel.process.ProcessMixin`` — including the examples of the
product docs. Processes left behind are looked for in /proc by an environment marker that
every process of the test inherits."""

import json
import os
import re
import resource
import signal
import threading
import time
import uuid

import pytest

from pykernel import PyKernel
from pykernel.errors import InvalidParamsError, PyKernelError
from pykernel import CodeRunParams, SessionExecuteRequest, SessionExitedEvent
from pykernel_raw import RawServer


@pytest.fixture
def pk(pykernel_bin, tmp_path):
    client = PyKernel(pykernel_bin, cwd=str(tmp_path))
    try:
        yield client
    finally:
        client.close()
    assert client.returncode == 0, f"pykernel serve exited with status {client.returncode}"


@pytest.fixture(scope="module")
def shared_pk(pykernel_bin, tmp_path_factory):
    """One server for the module's requests refused for their params (they start nothing and
    change nothing in it: a server each was most of their time); checks it exits 0 on close."""
    client = PyKernel(pykernel_bin, cwd=str(tmp_path_factory.mktemp("shared_pk")))
    try:
        yield client
    finally:
        client.close()
    assert client.returncode == 0, f"pykernel serve exited with status {client.returncode}"


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


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------- process.exec


def test_exec_ls_la(pk, tmp_path):
    (tmp_path / "hello.txt").write_text("hi")
    response = pk.exec("ls -la")
    assert response.exit_code == 0
    assert "hello.txt" in response.result
    assert response.stdout == response.result
    assert response.timed_out is False


def test_exec_sleep_with_relative_cwd_and_timeout(pk, tmp_path):
    (tmp_path / "workspace" / "src").mkdir(parents=True)
    started = time.monotonic()
    response = pk.exec("sleep 3; pwd", cwd="workspace/src", timeout=5)
    assert 2.5 < time.monotonic() - started < 5
    assert response.exit_code == 0
    assert response.timed_out is False
    assert response.stdout.strip() == str(tmp_path / "workspace" / "src")


def test_exec_env(pk):
    response = pk.exec("echo $CUSTOM_SECRET", env={"CUSTOM_SECRET": "DAYTONA"})
    assert response.exit_code == 0
    assert response.result == "DAYTONA\n"


def test_exec_separates_stdout_and_stderr(pk):
    response = pk.exec("echo out; echo err >&2; exit 3")
    assert response.exit_code == 3
    assert response.stdout == "out\n"
    assert response.stderr == "err\n"
    assert "out\n" in response.result and "err\n" in response.result


def test_exec_missing_cwd_is_invalid_params(shared_pk):
    with pytest.raises(InvalidParamsError) as info:
        shared_pk.exec("true", cwd="no/such/dir")
    assert info.value.code == -32602
    assert (info.value.reason, info.value.field) == ("invalid_cwd", "cwd")


@pytest.mark.parametrize(
    "method, params, field",
    [
        ("process.exec", {"command": "true", "timeout": -1}, "timeout"),
        ("process.exec", {"command": "true", "timeout": "soon"}, "timeout"),
        ("process.exec", {"command": "true", "env": {"A=B": "x"}}, "env"),
        ("process.exec", {"command": "true", "env": {"1A": "x"}}, "env"),
        ("process.exec", {}, "command"),
        ("process.code_run", {"code": "1", "language": "cobol"}, "language"),
        ("process.code_run", {"code": "1", "argv": [1]}, "argv"),
        ("session.create", {"id": ""}, "id"),
        ("session.exec", {"session": "s", "command": "true", "run_async": "yes"}, "run_async"),
        ("session.logs", {"session": "s"}, "cmd_id"),
    ],
)
def test_invalid_params_name_reason_and_field(shared_pk, method, params, field):
    with pytest.raises(InvalidParamsError) as info:
        shared_pk.call(method, params)
    assert info.value.code == -32602
    assert (info.value.reason, info.value.field) == ("invalid_argument", field), info.value.data


def test_exec_fractional_timeout_in_seconds(pk):
    started = time.monotonic()
    response = pk.exec("echo started; sleep 30", timeout=0.5)
    assert time.monotonic() - started < 10
    assert response.timed_out is True
    assert response.stdout == "started\n"


def test_exec_long_output_keeps_head_and_tail(pk):
    # 12 MiB against the server's default limit of 10 MiB per stream.
    response = pk.exec("echo head-marker; head -c 12582912 /dev/zero | tr '\\0' x; echo; echo tail-marker")
    assert response.exit_code == 0
    assert response.stdout.startswith("head-marker\nxxx")
    assert response.stdout.endswith("xxx\ntail-marker\n")
    assert response.stdout_truncated is True and response.result_truncated is True
    assert len(response.stdout) == 10 * 1024 * 1024
    assert len(response.stdout) + response.stdout_omitted_bytes == 12 + 12582912 + 1 + 12
    assert response.stderr_truncated is False and response.stderr_omitted_bytes == 0


def test_exec_runs_a_command_longer_than_one_argument_may_be(pk, tmp_path):
    """A command over 128 KiB (Linux's limit on one argument of a program) was refused -32016
    "Argument list too long": a 219 KB heredoc writing a file, as agents write files. It runs as
    `sh -c COMMAND` would: the same `$0` and arguments, stdin at end-of-file, exit status."""
    body = "\n".join("line %06d %s" % (i, "x" * 60) for i in range(3000))
    command = "cat > written.txt <<'EOF'\n" + body + "\nEOF\necho \"$0 $#\"; cat; echo end >&2; exit 7"
    assert len(command.encode()) > 200_000
    response = pk.exec(command)
    assert (response.exit_code, response.stdout, response.stderr) == (7, "/bin/sh 0\n", "end\n"), response.stderr
    assert (tmp_path / "written.txt").read_text() == body + "\n"
    short = pk.exec("echo \"$0 $#\"; cat; echo end >&2; exit 7")
    assert (short.exit_code, short.stdout, short.stderr) == (7, "/bin/sh 0\n", "end\n")


@pytest.mark.parametrize(
    "method, params, field",
    [
        ("process.exec", {"command": "true", "env": {"BIG": "x" * 140_000}}, "env"),
        ("process.exec", {"command": "true", "env": {f"V{i}": "x" * 120_000 for i in range(64)}}, "env"),
        ("process.code_run", {"code": "1", "argv": ["x" * 140_000]}, "argv"),
        ("process.code_run", {"code": "1", "argv": ["x" * 120_000] * 64}, "argv"),
        ("session.create", {"id": "big", "env": {"BIG": "x" * 140_000}}, "env"),
        ("pty.create", {"command": "true", "args": ["x" * 140_000]}, "args"),
    ],
)
def test_arguments_and_environments_no_program_can_receive_name_their_parameter(shared_pk, method, params, field):
    """An environment entry or argument over 128 KiB, or all of them together over about a
    quarter of the stack limit, cannot reach a program (E2BIG): -32602 naming the parameter,
    where it was -32016 `spawn_failed` "Argument list too long" without a field."""
    with pytest.raises(InvalidParamsError) as info:
        shared_pk.call(method, params)
    assert (info.value.code, info.value.reason, info.value.field) == (-32602, "invalid_argument", field), info.value.data
    assert "Linux" in str(info.value)


def test_exec_timeout_kills_the_whole_process_group(pk):
    marker = uuid.uuid4().hex
    started = time.monotonic()
    response = pk.exec(
        "echo before; sh -c 'sleep 100 & sleep 100'", env={"PK_MARK": marker}, timeout=1
    )
    assert time.monotonic() - started < 10
    assert response.timed_out is True
    assert response.exit_code != 0
    assert "before" in response.stdout

    def nothing_left():
        return not any(cmdline(pid)[:2] == [b"sleep", b"100"] for pid in marked_pids(marker))

    assert wait_until(nothing_left, 3), [cmdline(p) for p in marked_pids(marker)]


# Halves of `é` (C3 A9) written to stdout and stderr in turn, each half a write of its own.
SPLIT_CHARACTERS = "printf '\\303'; printf '\\303' >&2; sleep 0.2; printf '\\251'; printf '\\251' >&2"
# Lines of `€` on stdout (written in blocks that split characters) with progress on stderr between them.
EURO_LINES = ("awk 'BEGIN { for (i = 0; i < 2000; i++) { printf \"€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€€\\n\"; "
              "if (i % 10 == 0) printf \"progress %d\\n\", i > \"/dev/stderr\" } }'")


def assert_interleaved_by_characters(combined, stdout, stderr):
    assert "\ufffd" not in combined, combined[:200]
    assert sorted(combined) == sorted(stdout + stderr)
    assert len(combined.encode()) == len(stdout.encode()) + len(stderr.encode())


def test_the_interleaved_output_keeps_characters_split_across_writes(pk):
    """`result` and a session's `output` interleave the two streams by whole characters: a
    character split across two writes of stdout, with stderr writing between them, was garbled
    (`printf '\\303'` to both streams, then `'\\251'` to both, gave `'\ufffdé\ufffd'`; `€` lines
    with progress on stderr, 15 to 36 U+FFFD a run) while stdout and stderr alone were right."""
    for command in (SPLIT_CHARACTERS, EURO_LINES):
        response = pk.exec(command)
        assert_interleaved_by_characters(response.result, response.stdout, response.stderr)
        assert response.result_omitted_bytes == 0
    assert pk.exec(SPLIT_CHARACTERS).result == "éé"
    code = "import os, time\nos.write(1, b'\\xc3'); os.write(2, b'\\xc3'); time.sleep(0.2); os.write(1, b'\\xa9'); os.write(2, b'\\xa9')"
    response = pk.code_run(code)
    assert (response.stdout, response.stderr, response.result) == ("é", "é", "éé")
    pk.create_session("split")
    for command in (SPLIT_CHARACTERS, EURO_LINES):
        response = pk.execute_session_command("split", command)
        assert_interleaved_by_characters(response.output, response.stdout, response.stderr)
        started = pk.execute_session_command("split", command, run_async=True)
        logs = pk.get_session_command_logs("split", started.cmd_id, on_stdout=lambda _: None, on_stderr=lambda _: None)
        assert_interleaved_by_characters(logs.output, logs.stdout, logs.stderr)
    pk.delete_session("split")


def test_a_character_a_stream_leaves_incomplete_is_one_replacement_character(pk):
    """A character a stream leaves incomplete at its end is U+FFFD in the interleaved output too,
    and never joins bytes of the other stream into a character neither stream wrote."""
    response = pk.exec("printf '\\303'; exec >&-; sleep 0.2; printf '\\251x' >&2")
    assert (response.stdout, response.stderr) == ("\ufffd", "\ufffdx")
    assert response.result == "\ufffd\ufffdx"


# ---------------------------------------------------------------- process.code_run


def test_invalid_utf8_over_the_limit_is_capped_as_its_text(pk):
    """Over 10 MiB of bytes that are not UTF-8: the streams were cut as bytes and decoded afterwards
    (10 MiB kept became 30 MiB of U+FFFD) and the interleaved `result`, whose incomplete characters
    were decoded before the cut, differed from `stdout` with stderr empty. The streams are text as
    they arrive: the 10 MiB cap bounds the text kept, counts are bytes of it, `result` is `stdout`."""
    limit = 10 * 1024 * 1024
    for command, text_bytes in [("head -c 11000000 /dev/zero | tr '\\0' '\\377'", 3 * 11_000_000),
                                ("python3 -c \"import sys; sys.stdout.buffer.write(b'a\\xe9' * 5500000)\"", 4 * 5_500_000)]:
        response = pk.exec(command, timeout=120)
        assert response.stderr == ""
        assert response.result == response.stdout
        assert response.result_omitted_bytes == response.stdout_omitted_bytes
        kept = len(response.stdout.encode())
        assert kept <= limit and response.stdout_truncated
        assert kept + response.stdout_omitted_bytes == text_bytes


def test_code_run_stateless_greet(pk):
    code = 'def greet(name):\n    return f"Hello, {name}!"\n\nprint(greet("Daytona"))\n'
    response = pk.code_run(code)
    assert response.exit_code == 0
    assert response.result == "Hello, Daytona!\n"
    # Stateless: the function does not survive into the next run.
    again = pk.code_run('print(greet("again"))')
    assert again.exit_code != 0
    assert "NameError" in again.stderr


def test_code_run_argv_intact_and_env(pk):
    argv = ["a b", '"quoted"', "it's", "$HOME", ""]
    response = pk.code_run(
        "import os, sys, json; print(json.dumps(sys.argv[1:])); print(os.environ['GREETING'])",
        argv=argv, env={"GREETING": "hi"},
    )
    assert response.exit_code == 0, response.stderr
    import json

    lines = response.stdout.splitlines()
    assert json.loads(lines[0]) == argv
    assert lines[1] == "hi"


def test_code_run_takes_the_product_sdks_params_and_timeout(pk):
    # code_run(code, CodeRunParams(argv=..., env=...), timeout), as the product's SDKs call it.
    code = "import os, sys; print(sys.argv[1:], os.environ['FOO'])"
    response = pk.code_run(code, CodeRunParams(argv=["Daytona"], env={"FOO": "BAR"}), 5)
    assert (response.exit_code, response.stdout) == (0, "['Daytona'] BAR\n")
    as_dict = pk.code_run(code, params={"argv": ["x"], "env": {"FOO": "dict"}}, timeout=5)
    assert as_dict.stdout == "['x'] dict\n"
    # Keywords win over params' fields; a language name in params' place.
    assert pk.code_run(code, CodeRunParams(argv=["x"], env={"FOO": "p"}), env={"FOO": "kw"}).stdout == "['x'] kw\n"
    assert pk.code_run("import time; time.sleep(5)", CodeRunParams(), 0.3).exit_code == 143
    with pytest.raises(InvalidParamsError):
        pk.code_run("x", "cobol")
    with pytest.raises(TypeError, match="params"):
        pk.code_run("x", 5)
    with pytest.raises(InvalidParamsError, match="'args' is not a key") as refused:
        pk.code_run("x", {"args": []})
    assert refused.value.data == {"reason": "unknown_parameter", "field": "args"}
    with pytest.raises(TypeError, match="timeout"):
        pk.code_run("x", None, ["not", "seconds"])


@pytest.mark.parametrize("language", ["javascript", "typescript"])
def test_code_run_node_languages(pk, language):
    # scripts/setup installs Node.js and a TypeScript runner (Debian's nodejs and ts-node).
    code = "const who: string = process.argv[2]; console.log(`Hello, ${who}!`)"
    if language == "javascript":
        code = code.replace(": string", "")
    response = pk.code_run(code, language=language, argv=["Daytona"])
    assert response.exit_code == 0, response.stderr
    assert response.stdout == "Hello, Daytona!\n"


def test_code_run_exception_is_nonzero_with_traceback(pk):
    response = pk.code_run("raise ValueError('boom')")
    assert response.exit_code != 0
    assert "Traceback" in response.stderr and "ValueError: boom" in response.stderr


# ---------------------------------------------------------------- sessions


def test_session_requests_written_at_once_run_in_the_order_written(pykernel_bin):
    """`session.create` then its commands, written at once (a file piped to the server): the
    commands found no session (9 times in 10 on a fresh server), and a session's synchronous
    commands ran in another order than written (`export V=7` then `echo $V` printed nothing, 33
    times in 50). The session is registered, and each synchronous command takes its place in the
    session's line, as its request is read."""
    import subprocess
    for _ in range(5):
        lines = ([{"jsonrpc": "2.0", "id": 1, "method": "session.create", "params": {"id": "o"}},
                  {"jsonrpc": "2.0", "id": 2, "method": "session.exec", "params": {"session": "o", "command": "export V=7"}},
                  {"jsonrpc": "2.0", "id": 3, "method": "session.exec", "params": {"session": "o", "command": "echo $V"}}]
                 + [{"jsonrpc": "2.0", "id": 10 + i, "method": "session.exec",
                     "params": {"session": "o", "command": "n=$((n+1)); echo $n"}} for i in range(10)])
        done = subprocess.run([pykernel_bin, "serve"], input="".join(json.dumps(line) + "\n" for line in lines).encode(),
                              capture_output=True, timeout=60)
        assert done.returncode == 0
        answers = {m["id"]: m for m in map(json.loads, done.stdout.decode().splitlines()) if "id" in m}
        assert answers[3]["result"]["stdout"] == "7\n", answers[3]
        assert [answers[10 + i]["result"]["stdout"] for i in range(10)] == [f"{i + 1}\n" for i in range(10)]


def test_the_end_of_input_announces_the_background_commands_it_ends(pykernel_bin):
    """At the end of input a background command still running is ended as at `shutdown`, and
    its `session.exited` is sent before the server's output closes (it died unannounced)."""
    server = RawServer(pykernel_bin)
    try:
        server.result("session.create", {"id": "bg"})
        cmd = server.result("session.exec", {"session": "bg", "command": "sleep 100", "run_async": True})["cmd_id"]
        server.close_stdin()
        exited = server.wait_for(lambda m: m.get("method") == "session.exited" and m["params"].get("cmd_id") == cmd,
                                 what="the background command's session.exited")
        assert exited["params"]["session"] == "bg"
        assert server.wait_exit() == 0
    finally:
        server.kill()


def test_a_command_queued_at_shutdown_is_answered_shutting_down(pykernel_bin):
    """A synchronous command waiting behind another when the server shuts down is answered
    -32005 `shutting_down` (it said the session "was deleted", which the client never did)."""
    server = RawServer(pykernel_bin)
    try:
        server.result("session.create", {"id": "q"})
        running = server.request("session.exec", {"session": "q", "command": "echo started; sleep 30"})
        queued = server.request("session.exec", {"session": "q", "command": "echo queued"})
        time.sleep(0.3)
        server.request("shutdown")
        assert server.response(running)["result"]["exit_code"] in (137, 143)  # TERM, a grace, KILL: docs/process-api.md
        error = server.response(queued)["error"]
        assert (error["code"], error["data"]["reason"]) == (-32005, "shutting_down"), error
        assert server.wait_exit() == 0
    finally:
        server.kill()


@pytest.mark.parametrize("ender", ["session.delete", "shutdown", "SIGTERM"])
def test_a_synchronous_command_ended_with_its_session_answers_with_its_output(pykernel_bin, tmp_path, ender):
    """A synchronous command ended by `session.delete`, `shutdown` or SIGTERM answers with what
    it printed: its logs were removed before its answer read them (stdout, stderr and output
    all "", or output alone), while a timeout and `process.exec` kept the output."""
    server = RawServer(pykernel_bin, cwd=str(tmp_path))
    try:
        server.result("session.create", {"id": "ended"})
        running = server.request("session.exec", {
            "session": "ended", "command": "echo out; echo err >&2; : > printed; sleep 100"})
        assert wait_until(lambda: (tmp_path / "printed").exists(), 10)
        if ender == "SIGTERM":
            server.process.send_signal(signal.SIGTERM)
        else:
            server.request(ender, {"session": "ended"} if ender == "session.delete" else None)
        result = server.response(running)["result"]
        # 143 when the shell reported `sleep` ended by the SIGTERM before the SIGKILL came.
        assert result["exit_code"] in (137, 143), result
        # bash may report the foreground `sleep` it lost to the SIGTERM, as it would in a terminal.
        status_line = re.compile(r"(?:.*: )?(?:Terminated|Killed)(?: .*)?\n")
        stderr = [line for line in result["stderr"].splitlines(True) if not status_line.fullmatch(line)]
        assert (result["stdout"], stderr) == ("out\n", ["err\n"]), result
        # Two writes close together on two pipes: in the order the server read them.
        output = [line for line in result["output"].splitlines(True) if not status_line.fullmatch(line)]
        assert sorted(output) == ["err\n", "out\n"], result
        if ender == "session.delete":
            server.close_stdin()
        assert server.wait_exit() == 0
    finally:
        server.kill()


def test_a_session_keeps_no_descriptor_per_finished_command(pykernel_bin):
    """Each finished command of a session held its three logs open for the session's life: under
    `ulimit -n 1024` the 331st command of one session failed, and then every command of the server.
    The logs stay readable after their descriptors are closed (and written to again by a note)."""
    server = RawServer(pykernel_bin)
    try:
        server.result("session.create", {"id": "many"})
        descriptors = lambda: len(os.listdir(f"/proc/{server.process.pid}/fd"))
        before = descriptors()
        for _ in range(200):
            assert server.result("session.exec", {"session": "many", "command": "echo x"})["stdout"] == "x\n"
        cmd = server.result("session.exec", {"session": "many", "command": "echo late", "run_async": True})["cmd_id"]
        server.wait_for(lambda m: m.get("method") == "session.exited" and m["params"].get("cmd_id") == cmd,
                        what="the async command's exit")
        deadline = time.monotonic() + 10
        while descriptors() > before + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert descriptors() <= before + 3, (before, descriptors())
        assert server.result("session.logs", {"session": "many", "cmd_id": cmd})["stdout"] == "late\n"
    finally:
        server.kill()


def test_the_process_apis_processes_end_with_a_server_that_is_killed(pykernel_bin, tmp_path):
    """A server that dies without ending its work (SIGKILL, a crash) left every process of the
    process API running: a session's background and foreground commands, an in-flight
    `process.exec` (its `sh -c` and children) and `process.code_run`, a PTY's program that ignores
    SIGHUP. The server's keeper process now kills their process groups when the server's socket
    to it ends. They do not die with the thread that started them (as with PR_SET_PDEATHSIG):
    they outlive the server's pool threads that end when idle."""
    marker = uuid.uuid4().hex
    server = RawServer(pykernel_bin, env=dict(os.environ, PK_MARK=marker), cwd=str(tmp_path))
    try:
        server.result("session.create", {"id": "bg"})
        server.result("session.exec", {"session": "bg", "command": "sleep 1021.1", "run_async": True})
        server.result("session.create", {"id": "fg"})
        server.request("session.exec", {"session": "fg", "command": "sleep 1021.2"})
        server.request("process.exec", {"command": "sleep 1021.3 & sleep 1021.4"})
        server.request("process.code_run", {"code": "import time\ntime.sleep(1021.5)"})
        server.result("pty.create", {"id": "t", "command": "sh", "args": ["-c", "trap '' HUP; sleep 1021.6"]})

        def commands():
            return {pid: cmdline(pid) for pid in marked_pids(marker) if pid != server.process.pid}

        def all_running():
            lines = [b" ".join(words) for words in commands().values()]
            return all(any(f"1021.{n}".encode() in line for line in lines) for n in (1, 2, 3, 4, 6)) and any(
                b"python3" in line for line in lines)
        assert wait_until(all_running, 15), commands()
        threads = set(os.listdir(f"/proc/{server.process.pid}/task"))
        assert wait_until(lambda: not threads <= set(os.listdir(f"/proc/{server.process.pid}/task")), 30), \
            "no thread of the server ended"
        assert all_running(), commands()
        server.process.kill()
        server.process.wait()
        assert wait_until(lambda: not commands(), 10), commands()
    finally:
        server.kill()
        for pid in marked_pids(marker):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("work", ["code", "sessions"])
def test_a_killed_server_leaves_no_private_directory(pykernel_bin, tmp_path, work):
    """A server killed with SIGKILL left its /tmp/pykernel-process-XXXXXX (with empty `runs/` and
    `sessions/`): thousands piled up over test runs. The process API now makes it on first use
    (a server that only runs code makes none), and the server's keeper removes it as the server
    dies (after a session, `process.code_run` and `process.exec`)."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = RawServer(pykernel_bin, env=dict(os.environ, TMPDIR=str(temporary)), cwd=str(tmp_path))
    try:
        if work == "code":
            context = server.result("context.create", {})["id"]
            assert server.result("code.run", {"context": context, "code": "1 + 1"})["status"] == "ok"
        else:
            server.result("session.create", {"id": "s"})
            assert server.result("session.exec", {"session": "s", "command": "echo hi"})["exit_code"] == 0
            assert server.result("process.code_run", {"code": "print(1)"})["exit_code"] == 0
            assert server.result("process.exec", {"command": "true"})["exit_code"] == 0
            assert list(temporary.glob("pykernel-process-*")), "the sessions' directory is not in TMPDIR"
        server.process.kill()
        server.process.wait()
        assert wait_until(lambda: not list(temporary.glob("pykernel-process-*")), 10), list(temporary.iterdir())
    finally:
        server.kill()


TAKE_EVERY_DESCRIPTOR = (
    "import os\nheld = globals().setdefault('held', [])\n"
    "try:\n    while True: held.append(os.open('/dev/null', os.O_RDONLY))\nexcept OSError as e: print(e.errno)\n")
GIVE_BACK = "for fd in held: os.close(fd)\nheld.clear()\n"


def out_of_descriptors_server(pykernel_bin, tmp_path, marker):
    """A server under `ulimit -n 256` whose descriptors its `default` context (the server's own
    process) can take: `code.run` of TAKE_EVERY_DESCRIPTOR leaves it none (EMFILE)."""
    return RawServer(pykernel_bin, env=dict(os.environ, PK_MARK=marker), cwd=str(tmp_path),
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)))


def start_sleepers(server, marker):
    server.result("session.create", {"id": "victim"})
    server.result("session.exec", {"session": "victim", "command": "sleep 1031.1", "run_async": True})
    server.result("session.exec", {"session": "victim", "command": "sh -c 'sleep 1031.2 & sleep 1031.3'", "run_async": True})
    sleeping = lambda: sorted(b" ".join(cmdline(pid)) for pid in marked_pids(marker) if cmdline(pid)[:1] == [b"sleep"])
    assert wait_until(lambda: len(sleeping()) == 3, 10), sleeping()


@pytest.mark.parametrize("ender", ["session.delete", "end of input"])
def test_a_session_ended_while_the_server_is_out_of_descriptors_ends_its_processes(pykernel_bin, tmp_path, ender):
    """Out of descriptors (EMFILE), the server could not list /proc: the empty table it read was
    taken for "every process ended", `session.delete` answered {} and the shutdown exited 0 while
    the session's shell, its commands' subshells and every `sleep` ran on, adopted by init. The
    killer reads /proc with descriptors it holds in reserve, and an incomplete read ends nothing."""
    marker = uuid.uuid4().hex
    server = out_of_descriptors_server(pykernel_bin, tmp_path, marker)
    try:
        start_sleepers(server, marker)
        assert server.result("code.run", {"code": TAKE_EVERY_DESCRIPTOR})["stdout"] == "24\n"  # EMFILE
        if ender == "session.delete":
            answer = server.call("session.delete", {"session": "victim"}, timeout=30)
            assert answer.get("result") == {}, answer
            left = [cmdline(pid) for pid in marked_pids(marker) if pid != server.process.pid]
            assert left == [], left
            server.result("code.run", {"code": GIVE_BACK})
            assert server.result("session.list")["sessions"] == []
        server.close_stdin()
        assert server.wait_exit(30) == 0
        assert wait_until(lambda: not marked_pids(marker), 5), [cmdline(pid) for pid in marked_pids(marker)]
    finally:
        server.kill()
        for pid in marked_pids(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_shell_started_with_the_last_descriptors_is_watched_or_refused(pykernel_bin, tmp_path):
    """With a few descriptors left, starting a session's shell failed at one step or another. With
    exactly one left for the spawn, swift-subprocess took it to open the working directory, and
    said "Failed to set working directory to …" (the directory was fine); with two, it started
    the shell but had no descriptor for its pidfd: the server logged `could not watch a descriptor
    errno=Bad file descriptor fd=-1`, took the running shell for one that had exited, and left it
    behind. Now each failure names the shortage, and a shell is only kept with its pidfd."""
    marker = uuid.uuid4().hex
    server = out_of_descriptors_server(pykernel_bin, tmp_path, marker)
    try:
        server.result("code.run", {"code": TAKE_EVERY_DESCRIPTOR + GIVE_BACK})
        outcomes = []
        for free in range(12):
            taken = server.result("code.run", {"code": TAKE_EVERY_DESCRIPTOR + f"for _ in range({free}): os.close(held.pop())\n"})
            assert taken["stdout"] == "24\n"
            answer = server.call("session.create", {"id": f"s{free}"}, timeout=30)
            server.result("code.run", {"code": GIVE_BACK})
            if "error" in answer:
                error = answer["error"]
                assert (error["code"], error["data"]["reason"]) == (-32016, "spawn_failed"), error
                assert "Too many open files" in error["message"] and "working directory" not in error["message"], error
                outcomes.append("refused")
                continue
            outcomes.append("started")
            shell = server.result("session.exec", {"session": f"s{free}", "command": "echo $$"})["stdout"]
            def bashes():
                return [str(pid) + "\n" for pid in marked_pids(marker) if cmdline(pid)[:1] and cmdline(pid)[0].endswith(b"bash")]
            # The shell, once a subshell it forked for the command (its output's redirection) has left.
            deadline = time.monotonic() + 10
            while bashes() != [shell] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert bashes() == [shell], (free, bashes(), shell)
            assert server.result("session.delete", {"session": f"s{free}"}) == {}
        assert outcomes[0] == "refused" and outcomes[-1] == "started", outcomes
        assert b"could not watch" not in server.stderr, server.stderr
        server.close_stdin()
        assert server.wait_exit(30) == 0
    finally:
        server.kill()
        for pid in marked_pids(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_session_command_given_as_a_dict(pk):
    """The TypeScript SDK's `executeSessionCommand(id, {command, runAsync})`, translated as a dict
    (it raised AttributeError)."""
    pk.create_session("dict-session")
    assert pk.execute_session_command("dict-session", {"command": "export FOO=BAR"}).exit_code == 0
    assert pk.execute_session_command("dict-session", {"command": "echo $FOO"}).stdout == "BAR\n"
    started = pk.execute_session_command("dict-session", {"command": "sleep 0.2; echo done", "runAsync": True})
    assert started.exit_code is None and started.cmd_id
    with pytest.raises(InvalidParamsError):
        pk.execute_session_command("dict-session", {"cmd": "true"})
    pk.delete_session("dict-session")


def test_a_session_command_request_with_an_unknown_key_or_a_flag_not_a_bool_is_refused(pk):
    """`{"command": "sleep 5", "run_asyc": True}` ran the command synchronously (the misspelt key,
    like a `cwd` key, was ignored), and `{"runAsync": "false"}` asynchronously (bool("false")),
    where code_run's dict refused unknown keys."""
    pk.create_session("strict")
    refusals = [({"command": "sleep 5", "run_asyc": True}, "run_asyc", "unknown_parameter"),
                ({"command": "pwd", "cwd": "/"}, "cwd", "unknown_parameter"),
                ({"command": "sleep 5", "runAsync": "false"}, "runAsync", "invalid_argument"),
                ({"command": "sleep 5", "run_async": 1}, "run_async", "invalid_argument"),
                (SessionExecuteRequest(command="sleep 5", run_async="false"), "run_async", "invalid_argument"),
                (SessionExecuteRequest(command="sleep 5", var_async="yes"), "var_async", "invalid_argument")]
    for request, field, reason in refusals:
        with pytest.raises(InvalidParamsError, match=repr(field) if reason == "unknown_parameter" else f"{field} must be a bool") as refused:
            pk.execute_session_command("strict", request)
        assert refused.value.data == {"reason": reason, "field": field}, request
    assert pk.get_session("strict").commands == []  # none of them ran
    assert pk.execute_session_command("strict", {"command": "echo ok", "runAsync": False}).stdout == "ok\n"
    assert pk.execute_session_command("strict", {"command": "true", "async": True, "timeout": None}).exit_code is None


def test_code_run_refuses_an_argv_that_is_a_string(pk):
    # argv="abc" ran with sys.argv == ['-', 'a', 'b', 'c'] (list("abc")).
    code = "import sys; print(sys.argv[1:])"
    for call in (lambda: pk.code_run(code, argv="abc"), lambda: pk.code_run(code, CodeRunParams(argv="abc")),
                 lambda: pk.code_run(code, {"argv": b"abc"})):
        with pytest.raises(InvalidParamsError, match="argv must be a list of strings") as refused:
            call()
        assert refused.value.data == {"reason": "invalid_argument", "field": "argv"}
    assert pk.code_run(code, argv=("abc",)).stdout == "['abc']\n"


def test_session_export_echo_and_cd_persist(pk, tmp_path):
    (tmp_path / "sub").mkdir()
    created = pk.create_session("exec-session-1")
    assert created.session_id == "exec-session-1" and created.commands == []
    first = pk.execute_session_command("exec-session-1", SessionExecuteRequest(command="export FOO=BAR"))
    assert first.exit_code == 0
    second = pk.execute_session_command("exec-session-1", SessionExecuteRequest(command="echo $FOO"))
    assert second.exit_code == 0
    assert second.stdout == "BAR\n" and second.output == "BAR\n"
    pk.execute_session_command("exec-session-1", "cd sub")
    assert pk.execute_session_command("exec-session-1", "pwd").stdout.strip() == str(tmp_path / "sub")

    session = pk.get_session("exec-session-1")
    assert session.session_id == "exec-session-1"
    assert [c.command for c in session.commands] == ["export FOO=BAR", "echo $FOO", "cd sub", "pwd"]
    assert all(c.exit_code == 0 for c in session.commands)
    command = pk.get_session_command("exec-session-1", second.cmd_id)
    assert (command.id, command.command, command.exit_code) == (second.cmd_id, "echo $FOO", 0)
    assert "exec-session-1" in [s.session_id for s in pk.list_sessions()]
    logs = pk.get_session_command_logs("exec-session-1", second.cmd_id)
    assert logs.stdout == "BAR\n" and logs.output == "BAR\n"
    assert (logs.stdout_truncated, logs.stdout_omitted_bytes, logs.output_omitted_bytes) == (False, 0, 0)
    assert (second.stdout_truncated, second.stdout_omitted_bytes, second.output_truncated) == (False, 0, False)
    pk.delete_session("exec-session-1")


def test_session_errors(pk):
    pk.create_session("dup", env={"X": "1"})
    with pytest.raises(PyKernelError) as info:
        pk.create_session("dup")
    assert info.value.code == -32011
    assert info.value.reason == "session_exists"
    with pytest.raises(PyKernelError) as info:
        pk.get_session("nope")
    assert info.value.code == -32010
    with pytest.raises(PyKernelError) as info:
        pk.get_session_command("dup", "no-such-command")
    assert info.value.code == -32012
    done = pk.execute_session_command("dup", "echo $X")
    assert done.stdout == "1\n"
    with pytest.raises(PyKernelError) as info:
        pk.send_session_command_input("dup", done.cmd_id, "x\n")
    assert info.value.code == -32013
    with pytest.raises(InvalidParamsError) as info:
        pk.create_session("bad-cwd", cwd="does/not/exist")
    assert (info.value.reason, info.value.field) == ("invalid_cwd", "cwd")


def test_async_command_streamed_with_follow(pk):
    pk.create_session("stream")
    response = pk.execute_session_command(
        "stream",
        SessionExecuteRequest(
            command='for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; sleep 0.3; done',
            run_async=True,
        ),
    )
    assert response.cmd_id and response.exit_code is None
    chunks = []

    def on_stdout(text):
        chunks.append(("stdout", text, time.monotonic()))

    def on_stderr(text):
        chunks.append(("stderr", text, time.monotonic()))

    logs = pk.get_session_command_logs("stream", response.cmd_id, on_stdout=on_stdout, on_stderr=on_stderr)
    returned = time.monotonic()
    assert "".join(t for s, t, _ in chunks if s == "stdout") == "out 1\nout 2\nout 3\n"
    assert "".join(t for s, t, _ in chunks if s == "stderr") == "err 1\nerr 2\nerr 3\n"
    # Streamed as written: the first chunk came well before the command ended.
    assert returned - chunks[0][2] > 0.4
    assert logs.stdout == "out 1\nout 2\nout 3\n"
    assert logs.exit_code == 0
    assert pk.get_session_command("stream", response.cmd_id).exit_code == 0


def test_interactive_input(pk):
    pk.create_session("interactive")
    response = pk.execute_session_command(
        "interactive", 'read name && echo "Hello, $name"', run_async=True
    )
    pk.send_session_command_input("interactive", response.cmd_id, "Alice\n")
    out = []
    logs = pk.get_session_command_logs("interactive", response.cmd_id, on_stdout=out.append)
    assert logs.stdout == "Hello, Alice\n"
    assert logs.exit_code == 0


def test_session_exited_notification(pk):
    events = []
    arrived = threading.Event()

    def on_exit(event):
        events.append(event)
        arrived.set()

    pk.on_session_exited(on_exit)
    pk.create_session("notify")
    response = pk.execute_session_command("notify", "sleep 0.2; exit 7", run_async=True)
    assert arrived.wait(10), "no session.exited notification"
    assert events[0] == SessionExitedEvent(session="notify", cmd_id=response.cmd_id, exit_code=7)


def test_delete_session_kills_its_processes(pk):
    marker = uuid.uuid4().hex
    pk.create_session("doomed", env={"PK_MARK": marker})
    pk.execute_session_command("doomed", "sh -c 'sleep 100 & sleep 100'", run_async=True)
    pk.execute_session_command("doomed", "sleep 100", run_async=True)
    assert wait_until(
        lambda: sum(cmdline(p)[:2] == [b"sleep", b"100"] for p in marked_pids(marker)) >= 3, 5
    ), [cmdline(p) for p in marked_pids(marker)]
    pk.delete_session("doomed")
    assert wait_until(lambda: not marked_pids(marker), 5), [cmdline(p) for p in marked_pids(marker)]
    with pytest.raises(PyKernelError) as info:
        pk.get_session("doomed")
    assert info.value.code == -32010


def test_children_add_no_thread_per_child_or_pipe(pk):
    # The server's threads: one monitor thread reads every pipe and watches every child.
    def threads():
        return len(os.listdir(f"/proc/{pk.pid}/task"))

    marker = uuid.uuid4().hex
    pk.exec("true")
    before = threads()
    for session in range(5):
        pk.create_session(f"t{session}", env={"PK_MARK": marker})
        for _ in range(5):
            pk.execute_session_command(f"t{session}", "sleep 1020", run_async=True)
    assert wait_until(lambda: sum(cmdline(p)[:2] == [b"sleep", b"1020"] for p in marked_pids(marker)) == 25, 10)
    # 30 children (5 shells, 25 commands); a thread per child and per pipe would be 55 more.
    assert threads() - before < 10, threads() - before


def parent_of(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[1])


def sleeping(marker, seconds):
    """Pids of the live ``sleep <seconds>`` processes of the test's sessions."""
    return [p for p in marked_pids(marker) if cmdline(p)[:2] == [b"sleep", str(seconds).encode()]]


def test_a_sessions_async_commands_are_not_jobs_of_its_commands(pk):
    # An asynchronous command (a dev server) is no job of the shell the session's commands run
    # in: their `wait` waits for their own jobs only, `jobs` lists none, `%1` names none and `$!`
    # is not set; ended by a signal from a command, it is reported as ended.
    marker = uuid.uuid4().hex
    pk.create_session("dev", env={"PK_MARK": marker})
    server = pk.execute_session_command("dev", "exec sleep 1041", run_async=True)
    assert wait_until(lambda: sleeping(marker, 1041))
    jobs = pk.execute_session_command("dev", 'jobs; echo "last=${!-none}"; kill %1', timeout=5)
    assert (jobs.exit_code, jobs.stdout) == (1, "last=none\n")
    assert jobs.stderr.endswith("kill: %1: no such job\n")
    start = time.monotonic()
    built = pk.execute_session_command("dev", "(sleep 0.2; echo built) & wait; echo done", timeout=5)
    assert (built.exit_code, built.timed_out, built.stdout) == (0, False, "built\ndone\n")
    assert time.monotonic() - start < 3
    assert pk.get_session_command("dev", server.cmd_id).exit_code is None
    [pid] = sleeping(marker, 1041)
    assert pk.execute_session_command("dev", f"kill {pid}", timeout=5).exit_code == 0
    assert wait_until(lambda: pk.get_session_command("dev", server.cmd_id).exit_code == 143)


def test_an_async_command_whose_reporter_was_killed_is_reported_when_it_ends(pk):
    # The process that waits for an asynchronous command and reports its exit is killed: the
    # command runs on, and is reported ended (exit status unknown: -1, and a note) when its
    # process ends.
    marker = uuid.uuid4().hex
    events = []
    pk.on_session_exited(events.append)
    pk.create_session("orphan", env={"PK_MARK": marker})
    command = pk.execute_session_command("orphan", "sleep 1042; echo after", run_async=True)
    assert wait_until(lambda: sleeping(marker, 1042))
    [pid] = sleeping(marker, 1042)
    reporter = parent_of(parent_of(pid))
    os.kill(reporter, signal.SIGKILL)
    assert wait_until(lambda: reporter not in marked_pids(marker))
    assert pk.get_session_command("orphan", command.cmd_id).exit_code is None
    os.kill(pid, signal.SIGTERM)
    assert wait_until(lambda: pk.get_session_command("orphan", command.cmd_id).exit_code == -1)
    logs = pk.get_session_command_logs("orphan", command.cmd_id)
    assert logs.stdout == "after\n"
    assert logs.stderr.endswith("pykernel: the process that reports this command's exit was killed; its exit status is unknown\n")
    assert wait_until(lambda: events) and events == [SessionExitedEvent(session="orphan", cmd_id=command.cmd_id, exit_code=-1)]


def test_a_sessions_functions_and_aliases_do_not_take_the_commands_that_run_it(pk):
    # Functions named as the builtins a session's commands are run with, and aliases of bash's
    # reserved words: commands still run and end, with and without timeouts, synchronous or
    # not, and the session keeps them across an exit of its shell.
    pk.create_session("shadow")
    defined = pk.execute_session_command(
        "shadow",
        "builtin() { :; }; command() { :; }; printf() { echo mine; }; trap() { :; }; set() { :; }; unset() { :; }; "
        "wait() { :; }; shopt -s expand_aliases; alias case=: esac=: '{'=: then=: .=: POSIXLY_CORRECT=:",
        timeout=5,
    )
    assert (defined.exit_code, defined.timed_out) == (0, False)
    hello = pk.execute_session_command("shadow", "echo hello", timeout=5)
    assert (hello.exit_code, hello.timed_out, hello.stdout) == (0, False, "hello\n")
    slow = pk.execute_session_command("shadow", "sleep 1043", timeout=0.5)
    assert (slow.exit_code, slow.timed_out) == (124, True)
    background = pk.execute_session_command("shadow", "echo bg; printf x", run_async=True)
    logs = pk.get_session_command_logs("shadow", background.cmd_id, on_stdout=lambda _: None)
    assert (logs.exit_code, logs.stdout) == (0, "bg\nmine\n")
    assert pk.execute_session_command("shadow", "exit 3", timeout=5).exit_code == 3
    kept = pk.execute_session_command("shadow", "type -t builtin printf set; alias case", timeout=5)
    assert (kept.exit_code, kept.stdout) == (0, "function\nfunction\nfunction\nalias case=':'\n")


def test_a_timeout_always_answers_124_and_the_session_goes_on(pk, tmp_path):
    # The command ignores the timeout's signal to the shell and loops in the shell itself: the
    # shell is killed, the command answers 124, and the next command gets a new shell.
    pk.create_session("stubborn", cwd=str(tmp_path))
    pk.execute_session_command("stubborn", "mkdir kept && cd kept")
    loop = pk.execute_session_command("stubborn", "trap '' USR2; while :; do :; done", timeout=0.5)
    assert (loop.exit_code, loop.timed_out) == (124, True)
    after = pk.execute_session_command("stubborn", "pwd", timeout=5)
    assert (after.exit_code, after.stdout) == (0, f"{tmp_path}/kept\n")


def test_a_session_commands_timeout_ends_what_it_started_outside_its_tree(pk):
    # `(cmd &)` leaves the command's process tree (its parent exits) but not its process group:
    # a timeout ends it, synchronous or not, as process.exec's does; the session's other
    # processes (an asynchronous command) run on.
    marker = uuid.uuid4().hex
    pk.create_session("leaky", env={"PK_MARK": marker})
    other = pk.execute_session_command("leaky", "sleep 1044", run_async=True)
    assert wait_until(lambda: sleeping(marker, 1044))
    slow = pk.execute_session_command("leaky", "(sleep 1045 &); sleep 100", timeout=0.5)
    assert (slow.exit_code, slow.timed_out) == (124, True)
    assert wait_until(lambda: not sleeping(marker, 1045)), [cmdline(p) for p in marked_pids(marker)]
    background = pk.execute_session_command("leaky", "(sleep 1046 &); sleep 100", run_async=True, timeout=0.5)
    logs = pk.get_session_command_logs("leaky", background.cmd_id, on_stdout=lambda _: None)
    assert logs.exit_code in (143, 137)
    assert wait_until(lambda: not sleeping(marker, 1046)), [cmdline(p) for p in marked_pids(marker)]
    assert sleeping(marker, 1044) and pk.get_session_command("leaky", other.cmd_id).exit_code is None


def test_an_async_commands_timeout_reports_how_the_command_ended(pk):
    """docs/process-api.md said a timed-out asynchronous command's exit_code "is then 143": a
    program that ignores SIGTERM is SIGKILLed after the grace and reports 137, one that handles it
    reports its own status. The sentence now says so; this holds it to what the server does."""
    pk.create_session("timed")
    commands = {"sleep 30": 143, "trap 'exit 3' TERM; sleep 30 & wait": 3, "trap '' TERM; sleep 30": 137}
    ids = {pk.execute_session_command("timed", command, 1, run_async=True).cmd_id: code for command, code in commands.items()}
    for cmd_id, code in ids.items():
        logs = pk.get_session_command_logs("timed", cmd_id, on_stdout=lambda _: None)
        assert logs.exit_code == code, (pk.get_session_command("timed", cmd_id).command, logs.exit_code)


def test_a_session_commands_trace_holds_only_its_own_lines(pk):
    # `set -x` traces the command's lines, one level deeper as bash traces a sourced script, and
    # nothing of what runs them.
    pk.create_session("traced")
    pk.execute_session_command("traced", "set -x")
    traced = pk.execute_session_command("traced", "echo hi")
    assert (traced.stdout, traced.stderr) == ("hi\n", "++ echo hi\n")
    background = pk.execute_session_command("traced", "echo hi", run_async=True)
    logs = pk.get_session_command_logs("traced", background.cmd_id, on_stdout=lambda _: None)
    assert (logs.stdout, logs.stderr) == ("hi\n", "++ echo hi\n")


# ---------------------------------------------------------------- entrypoint


def test_session_methods_take_the_product_sdks_keyword_names(pk):
    # req= for the command, command_id= for a command's id (the product's Python SDK names).
    pk.create_session("kw")
    command = pk.execute_session_command("kw", req=SessionExecuteRequest(command="read line; echo got $line", run_async=True))
    pk.send_session_command_input(session_id="kw", command_id=command.cmd_id, data="it\n")
    logs = pk.get_session_command_logs("kw", command_id=command.cmd_id, on_stdout=lambda text: None)
    assert (logs.exit_code, logs.stdout) == (0, "got it\n")
    assert pk.get_session_command("kw", command_id=command.cmd_id).exit_code == 0
    with pytest.raises(TypeError):
        pk.get_session_command("kw", command.cmd_id, command_id=command.cmd_id)
    with pytest.raises(TypeError):
        pk.execute_session_command("kw", "echo", req="echo")


def test_session_command_logs_async_streams_on_the_event_loop(pk):
    import asyncio

    pk.create_session("interactive-session")
    command = pk.execute_session_command(
        "interactive-session",
        SessionExecuteRequest(command='read -p "Proceed? " a; echo "out $a"; echo "err $a" >&2; echo done', run_async=True))
    seen, threads = [], set()

    async def on_stderr(text):  # a coroutine function: awaited in order
        await asyncio.sleep(0)
        seen.append(("stderr", text))

    def on_stdout(text):
        threads.add(threading.current_thread())
        seen.append(("stdout", text))

    async def main():
        logs_task = asyncio.create_task(pk.get_session_command_logs_async("interactive-session", command.cmd_id, on_stdout, on_stderr))
        await asyncio.sleep(0.3)
        assert not logs_task.done()
        pk.send_session_command_input("interactive-session", command.cmd_id, "y\n")
        return await logs_task, threading.current_thread()

    logs, loop_thread = asyncio.run(main())
    assert (logs.exit_code, logs.stdout, logs.stderr) == (0, "out y\ndone\n", "err y\n")
    assert "".join(text for stream, text in seen if stream == "stdout") == "out y\ndone\n"
    assert "".join(text for stream, text in seen if stream == "stderr") == "err y\n"
    assert threads == {loop_thread}

    # A callback's exception is raised by the await, once the command has exited.
    failing = pk.execute_session_command("interactive-session", "echo one; echo two", run_async=True)

    def fail(text):
        raise ValueError("callback failed")

    with pytest.raises(ValueError, match="callback failed"):
        asyncio.run(pk.get_session_command_logs_async("interactive-session", failing.cmd_id, fail, None))
    assert pk.get_session_command("interactive-session", failing.cmd_id).exit_code == 0


def test_entrypoint_logs_async(pykernel_bin, tmp_path):
    import asyncio

    client = PyKernel(pykernel_bin, args=("--", "sh", "-c", "echo entry; sleep 0.2; echo late"), cwd=str(tmp_path))
    try:
        chunks = []
        logs = asyncio.run(client.get_entrypoint_logs_async(chunks.append, chunks.append))
        assert (logs.exit_code, logs.stdout, "".join(chunks)) == (0, "entry\nlate\n", "entry\nlate\n")
    finally:
        client.close()
    assert client.returncode == 0


def test_shutdown_ends_the_process_apis_work_and_answers_last(pykernel_bin, tmp_path):
    """protocol.md: shutdown writes every pending response, its own last, and what is read after
    it is refused (-32005). A running `process.exec` was answered after the shutdown response (a
    PTY's `pty.exited` too), commands read after it still ran, and the server logged two
    shutdowns in flight as unanswered requests (each waited for the other)."""
    import json
    import subprocess

    requests = [("pe", "process.exec", {"command": "sleep 100"}), ("pty", "pty.create", {"id": "t", "command": "sleep", "args": ["100"]})]
    late = [("sd", "shutdown", None), ("sd2", "shutdown", None), ("after_pe", "process.exec", {"command": "echo ran"}),
            ("after_pty", "pty.create", {"command": "true"}), ("after_session", "session.create", {"id": "late"})]
    process = subprocess.Popen([pykernel_bin, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=tmp_path)

    def send(batch):
        for key, method, params in batch:
            message = {"jsonrpc": "2.0", "id": key, "method": method}
            if params is not None:
                message["params"] = params
            process.stdin.write((json.dumps(message) + "\n").encode())
        process.stdin.flush()

    send(requests)
    first = json.loads(process.stdout.readline())  # pty.create answers once it has started
    send(late)
    output, errors = process.communicate(timeout=30)  # end of input too
    messages = [first] + [json.loads(line) for line in output.splitlines()]
    order = [message.get("id", message.get("method")) for message in messages]
    assert order[-2:] in (["sd", "sd2"], ["sd2", "sd"]), order
    answers = {message["id"]: message for message in messages if "id" in message}
    for key in ("after_pe", "after_pty", "after_session"):
        assert answers[key]["error"]["code"] == -32005, answers[key]
    assert "exit_code" in answers["pe"]["result"] and "pty.exited" in order
    assert b"unanswered" not in errors, errors
    assert process.returncode == 0


def test_without_an_entrypoint_its_session_is_said_to_need_a_command_line(pk):
    # The -32010 message said "create it with session.create", which refuses the reserved id (-32015).
    with pytest.raises(PyKernelError) as missing:
        pk.get_entrypoint_session()
    assert (missing.value.code, missing.value.reason) == (-32010, "session_not_found")
    assert missing.value.message == ("no session 'entrypoint': the server was started without an entrypoint command "
                                     "(start it as 'pykernel serve -- CMD ARG...' to run CMD in this session)")
    with pytest.raises(PyKernelError) as reserved:
        pk.create_session("entrypoint")
    assert reserved.value.code == -32015


def test_entrypoint_session(pykernel_bin, tmp_path):
    client = PyKernel(pykernel_bin, args=("--", "sh", "-c", "echo entry; sleep 0.2"), cwd=str(tmp_path))
    try:
        session = client.get_entrypoint_session()
        assert session.session_id == "entrypoint"
        assert len(session.commands) == 1
        followed = []
        logs = client.get_entrypoint_logs(on_stdout=followed.append)
        assert logs.stdout == "entry\n"
        assert logs.exit_code == 0
        assert client.get_entrypoint_logs().stdout == "entry\n"
        assert "entrypoint" in [s.session_id for s in client.list_sessions()]
        with pytest.raises(PyKernelError) as info:
            client.delete_session("entrypoint")
        assert info.value.code == -32015
        with pytest.raises(PyKernelError) as info:
            client.execute_session_command("entrypoint", "echo no")
        assert info.value.code == -32015
    finally:
        client.close()
    assert client.returncode == 0


def test_a_follow_running_at_shutdown_is_answered_shutting_down(pykernel_bin):
    """SIGTERM while `session.logs` follows a command: -32005 `shutting_down` (it said -32010,
    the session "was deleted", which the client never did)."""
    server = RawServer(pykernel_bin)
    try:
        server.result("session.create", {"id": "s"})
        cmd = server.result("session.exec", {"session": "s", "command": "echo started; sleep 60", "run_async": True})["cmd_id"]
        follow = server.request("session.logs", {"session": "s", "cmd_id": cmd, "follow": True})
        server.wait_for(lambda m: m.get("method") == "session.output" and m["params"].get("request_id") == follow,
                        what="the followed command's output")
        server.process.send_signal(signal.SIGTERM)
        error = server.response(follow)["error"]
        assert (error["code"], error["data"]["reason"]) == (-32005, "shutting_down"), error
        assert server.wait_exit() == 0
    finally:
        server.kill()


@pytest.mark.parametrize("command", ["sleep 1000", "read x"])
def test_a_follow_running_at_the_end_of_input_is_answered_shutting_down(pykernel_bin, command):
    """The client's input ends while `session.logs` follows a command that never ends by itself:
    the follow is answered -32005 and the server exits (it waited for the command forever, and
    so did the command)."""
    server = RawServer(pykernel_bin)
    try:
        server.result("session.create", {"id": "s"})
        cmd = server.result("session.exec", {"session": "s", "command": f"echo started; {command}", "run_async": True})["cmd_id"]
        follow = server.request("session.logs", {"session": "s", "cmd_id": cmd, "follow": True})
        server.wait_for(lambda m: m.get("method") == "session.output" and m["params"].get("request_id") == follow,
                        what="the followed command's output")
        server.close_stdin()
        error = server.response(follow)["error"]
        assert (error["code"], error["data"]["reason"]) == (-32005, "shutting_down"), error
        assert server.wait_exit() == 0
    finally:
        server.kill()


# ---------------------------------------------------------------- followed logs keep the written order

# Writes of a command to stdout and stderr, in this order; two in a row to one stream included.
INTERLEAVED_WRITES = [("stderr", "e1\n"), ("stdout", "o1\n"), ("stdout", "o2\n"), ("stderr", "e2\n"),
                      ("stdout", "o3\n"), ("stderr", "e3\n"), ("stderr", "e4\n"), ("stdout", "o4\n")]


def _runs(chunks):
    """(stream, text) chunks with consecutive chunks of one stream joined: how a follow may split
    its output is its own, the order of the streams' runs is the command's."""
    runs = []
    for stream, text in chunks:
        if runs and runs[-1][0] == stream:
            runs[-1] = (stream, runs[-1][1] + text)
        else:
            runs.append((stream, text))
    return runs


def _start_stepped_writer(pk, session):
    """An asynchronous command that makes each write of INTERLEAVED_WRITES after reading a line."""
    script = "; ".join(f"read _; printf '{text[:-1]}\\n'" + (" >&2" if stream == "stderr" else "")
                       for stream, text in INTERLEAVED_WRITES)
    return pk.execute_session_command(session, script, run_async=True).cmd_id


def _make_writes(pk, session, cmd_id, writes):
    """Lets the command make its next writes one at a time, each once the server has read the one
    before (its interleaved `output` shows it), so that the order the server saw is the written one."""
    for stream, text in writes:
        before = pk.get_session_command_logs(session, cmd_id).output
        pk.send_session_command_input(session, cmd_id, "\n")
        assert wait_until(lambda: pk.get_session_command_logs(session, cmd_id).output == before + text), \
            pk.get_session_command_logs(session, cmd_id).output


def test_a_follow_delivers_a_finished_commands_writes_in_the_order_written(pk):
    """A follow of a command that had written to stdout and stderr in turns replayed all its
    stdout, then all its stderr (it read the two logs in turn); it now delivers each write in
    the order the command made them, as `output` has them."""
    pk.create_session("order")
    cmd_id = _start_stepped_writer(pk, "order")
    _make_writes(pk, "order", cmd_id, INTERLEAVED_WRITES)
    assert wait_until(lambda: pk.get_session_command("order", cmd_id).exit_code == 0)
    chunks = []
    logs = pk.get_session_command_logs("order", cmd_id, lambda text: chunks.append(("stdout", text)),
                                       lambda text: chunks.append(("stderr", text)))
    assert _runs(chunks) == _runs(INTERLEAVED_WRITES)
    assert "".join(text for stream, text in chunks if stream == "stdout") == logs.stdout
    assert "".join(text for stream, text in chunks if stream == "stderr") == logs.stderr
    assert "".join(text for _, text in chunks) == logs.output


def test_a_follow_delivers_a_running_commands_writes_in_the_order_written(pk):
    """A follow that starts while the command runs: its backlog, then what the command writes
    next, in the order written."""
    pk.create_session("order-live")
    cmd_id = _start_stepped_writer(pk, "order-live")
    _make_writes(pk, "order-live", cmd_id, INTERLEAVED_WRITES[:4])
    chunks = []
    followed = {}

    def follow():
        followed["logs"] = pk.get_session_command_logs(
            "order-live", cmd_id, lambda text: chunks.append(("stdout", text)), lambda text: chunks.append(("stderr", text)))

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        assert wait_until(lambda: "".join(text for _, text in chunks) == "e1\no1\no2\ne2\n"), chunks
        assert _runs(chunks) == _runs(INTERLEAVED_WRITES[:4])
        _make_writes(pk, "order-live", cmd_id, INTERLEAVED_WRITES[4:])
    finally:
        follower.join(10)
    logs = followed["logs"]
    assert logs.exit_code == 0
    assert _runs(chunks) == _runs(INTERLEAVED_WRITES)
    assert "".join(text for stream, text in chunks if stream == "stdout") == logs.stdout
    assert "".join(text for stream, text in chunks if stream == "stderr") == logs.stderr


def test_a_follow_of_an_exited_entrypoint_keeps_the_order_written(pykernel_bin, tmp_path):
    """The product's example follows the entrypoint's logs once it has written them: they came as
    one block of stdout, then one of stderr ('entry\\nlate\\n' then 'err\\n' where `output` said
    'entry\\nerr\\nlate\\n')."""
    os.mkfifo(tmp_path / "go")
    client = PyKernel(pykernel_bin, args=("--", "sh", "-c", "echo entry; echo err >&2; read x < go; echo late"),
                      cwd=str(tmp_path))
    try:
        assert wait_until(lambda: len(client.get_entrypoint_logs().output) == len("entry\nerr\n"))
        with open(tmp_path / "go", "w") as go:
            go.write("\n")
        assert wait_until(lambda: client.get_entrypoint_logs().exit_code == 0)
        chunks = []
        logs = client.get_entrypoint_logs(lambda text: chunks.append(("stdout", text)),
                                          lambda text: chunks.append(("stderr", text)))
        assert logs.output.endswith("late\n")
        assert "".join(text for _, text in chunks) == logs.output
        assert "".join(text for stream, text in chunks if stream == "stderr") == logs.stderr == "err\n"
    finally:
        client.close()
    assert client.returncode == 0
