"""The wire examples of docs/protocol.md, docs/process-api.md, docs/pty.md, docs/mcp.md and
README.md, replayed against the real ``pykernel serve`` (``pykernel mcp``).

Each fenced block with ``-->`` (sent) and ``<--`` (received) lines is one example (protocol.md's
each on a server of its own; the others' in order on one, as they go on from each other;
one under ``$ pykernel serve OPTIONS`` on a server started so; a shell session's
``$ echo 'REQUEST' | pykernel serve`` with the lines it printed): every request is sent as written, then the messages listed after it are
awaited (a response by its id, a notification by its method and ``request_id``) and compared
with what the server sent. Compared: the fields each object has (no field missing, none
undocumented), the type of each value, the values that do not depend on the moment (status,
error names, codes and reasons, streams, kinds and states of contexts, flags) and the list of
methods. Not compared: texts and numbers that do (ids, pids, paths, durations, messages).
A terminal's output falls into ``pty.output`` notifications as timing has it: what each documented
one holds (its escape sequences and carriage returns aside) is awaited in what the terminal wrote,
after what the one before it showed.

Ids are UUIDs in the docs: one a response introduces (a context's, a command's) stands for the
id the server answered there; a context id a request uses first (an example that continues an earlier one) stands for a
context created for it, unless the docs answer it ``context_not_found``. ``/tmp/project`` stands
for a directory of the test's own.
"""

import base64
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest

from pykernel_raw import RawServer

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A context's id in a request: the `context` of a run, the `id` of a context method.
CONTEXT_UUID = re.compile(r'(?:"context":"|"method":"context\.[a-z]+","params":\{"id":")(' + UUID.pattern + ")")
# Values that are the same whenever the example runs.
STABLE_TEXT = {"jsonrpc", "method", "status", "reason", "stream", "language", "isolation", "state", "worker_start", "default",
               "field", "type"}
STABLE_FLAGS = {"stdout_truncated", "stderr_truncated", "interrupted", "password", "is_main_result", "isError", "timed_out"}
STABLE_LISTS = {"methods"}
STABLE_NUMBERS = {"code", "exit_code", "signal", "cols", "rows"}
CONTEXT_NOT_FOUND = -32001
# A request in a shell session: `$ echo 'REQUEST' | pykernel serve`, its output on the next lines.
SHELL_REQUEST = re.compile(r"^\$ echo '(\{.*\})' \| pykernel serve$")
RICH_VENV = os.environ.get("PYKERNEL_RICH_VENV", os.path.join(os.path.dirname(DOCS), ".venv-rich"))


def examples(name):
    """The examples of docs/NAME: (first line number, [(direction, line number, text)]). A block
    indented into a list item is one too (its lines without the indentation)."""
    found, block, start = [], None, 0
    with open(os.path.join(DOCS, name), encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            line = line.lstrip(" ")
            if line.startswith("```"):
                if block is None:
                    block, start = [], number
                else:
                    if any(direction == "-->" for direction, _, _ in block):
                        found.append((start, block))
                    block = None
            elif block is not None and line[:4] in ("--> ", "<-- "):
                block.append((line[:3], number, without_comment(line[4:].strip())))
            elif block is not None and (piped := SHELL_REQUEST.match(line.strip())):
                block.append(("-->", number, piped.group(1)))
            elif block is not None and line.startswith('{"jsonrpc"'):
                block.append(("<--", number, line.strip()))  # what that shell session printed
            elif block is not None and line.startswith("$ pykernel serve"):
                block.append(("$", number, line[len("$ pykernel serve"):].strip()))
    return found


def without_comment(text):
    """A message without the comment after it (``{...}   # what its data decodes to``)."""
    commented = re.match(r"^(\{.*\})\s{2,}#\s.*$", text)
    if commented:
        try:
            json.loads(commented.group(1))
            return commented.group(1)
        except ValueError:
            pass
    return text


def compare(expected, actual, where, key=None):
    """The differences between a documented message and the one received, as readable lines."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: an object is documented, {json.dumps(actual)[:80]} was sent"]
        problems = []
        if set(expected) != set(actual):
            missing, extra = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
            problems.append(f"{where}: fields documented but not sent {missing}, sent but not documented {extra}")
        for field in set(expected) & set(actual):
            problems += compare(expected[field], actual[field], f"{where}.{field}", field)
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: a list is documented, {json.dumps(actual)[:80]} was sent"]
        if key in STABLE_LISTS:
            return [] if expected == actual else [f"{where}: documented {expected}, sent {actual}"]
        return [problem for index, (one, other) in enumerate(zip(expected, actual))
                for problem in compare(one, other, f"{where}[{index}]", key)]
    if expected is None or isinstance(expected, bool):
        if (expected is None) != (actual is None) or (isinstance(expected, bool) and not isinstance(actual, bool)):
            return [f"{where}: documented {json.dumps(expected)}, sent {json.dumps(actual)[:80]}"]
        if key in STABLE_FLAGS and expected != actual:
            return [f"{where}: documented {json.dumps(expected)}, sent {json.dumps(actual)}"]
        return []
    if isinstance(expected, (int, float)):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return [f"{where}: a number is documented, {json.dumps(actual)[:80]} was sent"]
        if key in STABLE_NUMBERS and expected != actual:
            return [f"{where}: documented {expected}, sent {actual}"]
        return []
    if not isinstance(actual, str):
        return [f"{where}: a string is documented, {json.dumps(actual)[:80]} was sent"]
    if key in STABLE_TEXT and expected != actual:
        return [f"{where}: documented {expected!r}, sent {actual!r}"]
    return []


def is_response(message):
    return "id" in message and "method" not in message


# What a terminal's output shows: control sequences (CSI) and carriage returns left out.
TERMINAL_CONTROLS = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\r")


def terminal_text(messages, terminal):
    """What the PTY ``terminal`` has written so far, as ``terminal_text`` shows it."""
    written = b"".join(base64.b64decode(m["params"]["data"]) for m in messages
                       if m.get("method") == "pty.output" and m["params"].get("id") == terminal)
    return TERMINAL_CONTROLS.sub(b"", written)


class Replay:
    def __init__(self, server, project, project_contexts):
        self.server = server
        self.project = project
        self.project_contexts = project_contexts  # the docs' contexts made in /tmp/project
        self.ids = {}  # a UUID of the docs -> the server's
        self.terminal_cursor = {}  # a PTY's id -> where in what it showed the last awaited output ended

    def text(self, line):
        return line.replace("/tmp/project", self.project)

    def learn_ids(self, expected, actual):
        """Maps the UUIDs a documented answer introduces onto the ids the server sent there."""
        if isinstance(expected, dict) and isinstance(actual, dict):
            for field, value in expected.items():
                if isinstance(value, str) and UUID.fullmatch(value) and isinstance(actual.get(field), str):
                    self.ids.setdefault(value, actual[field])
                else:
                    self.learn_ids(value, actual.get(field))
        elif isinstance(expected, list) and isinstance(actual, list):
            for one, other in zip(expected, actual):
                self.learn_ids(one, other)

    def request_line(self, line, expected_replies):
        """The request as sent: the docs' context ids replaced by the server's (created if new)."""
        answered_not_found = any(f'"code":{CONTEXT_NOT_FOUND}' in reply for reply in expected_replies)
        for documented in CONTEXT_UUID.findall(line):
            if documented in self.ids or answered_not_found:
                continue
            params = {"cwd": self.project} if documented in self.project_contexts else {}
            self.ids[documented] = self.server.result("context.create", params)["id"]
        return UUID.sub(lambda match: self.ids.get(match.group(0), match.group(0)), self.text(line))


@functools.lru_cache
def documented_project_contexts(name):
    """Context ids the docs create in /tmp/project (a later example expects them there)."""
    ids = set()
    for _, block in examples(name):
        for direction, _, line in block:
            if direction == "<--" and '"cwd":"/tmp/project"' in line:
                ids.update(UUID.findall(line))
    return ids


def replay(session, block):
    """Sends the requests of one example and compares what comes back; the problems found."""
    server = session.server
    problems = []
    for index, (direction, number, line) in enumerate(block):
        if direction != "-->":
            continue
        following = []
        for later_direction, later_number, later_line in block[index + 1:]:
            if later_direction == "-->":
                break
            following.append((later_number, later_line))
        # Sent as written: the examples of malformed requests are not JSON.
        server.send(session.request_line(line, [text for _, text in following]).encode() + b"\n")
        for reply_number, reply_line in following:
            try:
                documented = json.loads(session.text(reply_line))
            except ValueError:
                documented = None  # elided (`...`): an answer whose arrival only is checked
            if documented is not None and documented.get("method") == "pty.output":
                # In order: what each documented chunk shows comes after what the one before showed
                # (a prompt awaited is the new one, not one shown earlier).
                terminal, shown = documented["params"]["id"], TERMINAL_CONTROLS.sub(b"", base64.b64decode(documented["params"]["data"]))
                start = session.terminal_cursor.get(terminal, 0)
                server.wait_until(lambda messages: terminal_text(messages, terminal).find(shown, start) >= 0, 30,
                                  f"the output of line {reply_number} ({shown!r})")
                text = terminal_text(server.messages_since(0), terminal)
                session.terminal_cursor[terminal] = text.find(shown, start) + len(shown)
                actual = next(m for m in server.messages_since(0) if m.get("method") == "pty.output" and m["params"].get("id") == terminal)
                problems += compare(documented, actual, f"line {reply_number}")
                continue
            if documented is None or is_response(documented):
                reply_id = documented["id"] if documented else json.loads(re.search(r'"id":(\d+|"[^"]*"|null)', reply_line).group(1))
                actual = server.wait_for(lambda m: is_response(m) and m.get("id") == reply_id, 30, f"the answer of line {reply_number}")
            else:
                # A run's notification by its request, a terminal's by its id.
                method, params = documented["method"], documented["params"]
                key = "request_id" if "request_id" in params else "id"
                actual = server.wait_for(
                    lambda m: m.get("method") == method and isinstance(m.get("params"), dict)
                    and m["params"].get(key) == params.get(key), 30, f"the notification of line {reply_number}")
            if documented is not None:
                session.learn_ids(documented, actual)
                problems += compare(documented, actual, f"line {reply_number}")
    return problems


@pytest.mark.parametrize("name, start, block", [(name, start, block) for name in ("protocol.md", "../README.md")
                                                 for start, block in examples(name)],
                         ids=lambda value: value if isinstance(value, str) else f"line{value}" if isinstance(value, int) else "")
def test_the_protocol_examples_are_what_the_server_sends(pykernel_bin, tmp_path, name, start, block):
    """Each example on a server of its own (README's too)."""
    check_examples(pykernel_bin, tmp_path, name, [(start, block)])


def test_the_process_api_examples_are_what_the_server_sends(pykernel_bin, tmp_path):
    """docs/process-api.md's examples on one server, in order: they go on from each other (the
    sessions and commands one makes are used by the next); its chart needs matplotlib."""
    assert os.path.exists(os.path.join(RICH_VENV, "bin", "python")), f"{RICH_VENV} is missing: run scripts/setup"
    check_examples(pykernel_bin, tmp_path, "process-api.md", examples("process-api.md"), ["--venv", RICH_VENV])


def test_the_pty_examples_are_what_the_server_sends(pykernel_bin, tmp_path):
    """docs/pty.md's examples on one server, in order: the PTYs one makes are used by the next."""
    blocks = examples("pty.md")
    assert [json.loads(line)["id"] for _, block in blocks for direction, _, line in block if direction == "-->"] == list(range(1, 21))
    check_examples(pykernel_bin, tmp_path, "pty.md", blocks)


def test_the_mcp_examples_are_what_the_server_sends(pykernel_bin, tmp_path):
    """docs/mcp.md's examples on one `pykernel mcp`, in order (the first one's handshake serves the next)."""
    check_examples(pykernel_bin, tmp_path, "mcp.md", examples("mcp.md"), command="mcp")


def check_examples(pykernel_bin, tmp_path, name, blocks, options=(), command="serve"):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "workspace" / "src").mkdir(parents=True)  # the relative `cwd` of an example
    uses_processes = any('"isolation":"process"' in line for _, block in blocks for _, _, line in block)
    server = RawServer(pykernel_bin, [*options, *(["--pool-size", "1"] if uses_processes else [])], cwd=tmp_path, command=command)
    try:
        if uses_processes and command == "serve":
            # The examples show a pool with a worker ready (else a context is answered `starting`).
            pool_ready = lambda: server.result("kernel.info")["isolation"]["pool"]["ready"] >= 1  # noqa: E731
            deadline = time.monotonic() + 30
            while not pool_ready():
                assert time.monotonic() < deadline, "no worker became ready"
                time.sleep(0.01)
        session = Replay(server, str(project), documented_project_contexts(name))
        problems = []
        for start, block in blocks:
            command = [shlex.split(line) for direction, _, line in block if direction == "$"]
            if command:  # an example of a server started with other options: one of its own
                own = RawServer(pykernel_bin, [*options, *command[0]], cwd=tmp_path)
                try:
                    found = replay(Replay(own, str(project), session.project_contexts), block)
                finally:
                    own.kill()
            else:
                found = replay(session, block)
            problems += [f"the example at line {start}, {problem}" for problem in found]
        assert not problems, "docs/%s:\n%s" % (name, "\n".join(problems))
    finally:
        server.kill()


def test_every_example_is_found():
    blocks = examples("protocol.md")
    assert len(blocks) >= 12 and sum(len(block) for _, block in blocks) >= 60
    # Those indented into a list item too (a duplicate id, shutdown, a thread's output, a timeout).
    with open(os.path.join(DOCS, "protocol.md"), encoding="utf-8") as file:
        lines = file.read().splitlines()
    indented = [start for start, _ in blocks if lines[start - 1].startswith(" ")]
    assert len(indented) >= 4, indented
    assert compare({"a": 1, "status": "ok"}, {"a": 2, "status": "error"}, "m") == ["m.status: documented 'ok', sent 'error'"]
    assert compare({"a": 1}, {"b": 1}, "m") == ["m: fields documented but not sent ['a'], sent but not documented ['b']"]


def python_examples():
    """The ```python blocks of README.md and docs/*.md: (document, first line number, code)."""
    found = []
    for name in ("../README.md", *sorted(n for n in os.listdir(DOCS) if n.endswith(".md"))):
        code, start = None, 0
        with open(os.path.join(DOCS, name), encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if code is None and line.startswith("```python"):
                    code, start = [], number
                elif code is not None and line.startswith("```"):
                    found.append((name, start, "".join(code)))
                    code = None
                elif code is not None:
                    code.append(line)
    return found


@pytest.mark.parametrize("name, start, code", python_examples(),
                         ids=lambda value: value if isinstance(value, str) and value.endswith(".md") else f"line{value}" if isinstance(value, int) else "")
def test_the_python_client_examples_run(pykernel_bin, tmp_path, name, start, code):
    """Each Python example runs as written against the real server and prints what its comments say."""
    env = dict(os.environ, PYKERNEL_BIN=pykernel_bin, PYTHONPATH=os.path.join(os.path.dirname(DOCS), "python"))
    (tmp_path / ".venv").symlink_to(RICH_VENV)  # the chart examples' `--venv .venv`, with matplotlib
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert ran.returncode == 0, f"docs/{name}, the example at line {start}:\n{ran.stderr[-3000:]}"
    for promised in re.findall(r"print\(.*\)\s+# (\w+)$", code, re.MULTILINE):
        assert promised in ran.stdout, f"docs/{name}, the example at line {start} should print {promised}:\n{ran.stdout}"
