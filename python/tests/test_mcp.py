"""`pykernel mcp` driven by the official MCP Python SDK (the `mcp` package from PyPI), as an
agent host would: stdio transport, `ClientSession.initialize`, `list_tools`, `call_tool`."""

import asyncio
import os
import shlex
import subprocess
import json
import time

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError


def session(pykernel_bin, body, *args):
    """Runs ``await body(session)`` against a fresh ``pykernel mcp``; returns its value."""
    async def main():
        params = StdioServerParameters(command=pykernel_bin, args=["mcp", *args])
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as client:
                await client.initialize()
                return await body(client)
    return asyncio.run(main())


@pytest.fixture(params=["namespace", "process"])
def isolation(request):
    """The server's `--isolation`: the cases that hold for both kinds of context run in both."""
    return request.param


def text_of(result):
    return "".join(item.text for item in result.content if item.type == "text")


def test_tools_are_listed_with_schemas(pykernel_bin):
    async def body(client):
        return (await client.list_tools()).tools
    tools = {tool.name: tool for tool in session(pykernel_bin, body)}
    assert set(tools) == {"run_python", "create_context", "list_contexts", "delete_context",
                          "restart_context", "interrupt", "run_command"}
    schema = tools["run_python"].input_schema
    assert schema["required"] == ["code"]
    assert set(schema["properties"]) == {"code", "context", "timeout", "env"}
    assert tools["create_context"].input_schema["properties"]["isolation"]["enum"] == ["namespace", "process"]


def test_state_persists_and_output_includes_file_descriptor_writes(pykernel_bin, isolation):
    async def body(client):
        first = await client.call_tool("run_python", {"code": "x = 41"})
        second = await client.call_tool(
            "run_python", {"code": "import os, sys\nprint(x + 1)\nos.system('echo from-a-subprocess')\n"
                                   "print('careful', file=sys.stderr)"})
        return first, second
    first, second = session(pykernel_bin, body, "--isolation", isolation)
    assert not first.is_error
    assert not second.is_error
    assert text_of(second) == "42\nfrom-a-subprocess\n[stderr]\ncareful\n"
    structured = second.structured_content
    assert structured["status"] == "ok"
    assert structured["stdout"] == "42\nfrom-a-subprocess\n"
    assert structured["execution_count"] == 2


def test_context_with_cwd_and_env(pykernel_bin, tmp_path, isolation):
    async def body(client):
        created = await client.call_tool("create_context", {"cwd": str(tmp_path)})
        context = created.structured_content["id"]
        run = await client.call_tool("run_python", {
            "code": "import os\nprint(os.getcwd(), os.environ['GREETING'])",
            "context": context, "env": {"GREETING": "hello"}})
        listed = await client.call_tool("list_contexts", {})
        deleted = await client.call_tool("delete_context", {"id": context})
        return created, run, listed, deleted
    created, run, listed, deleted = session(pykernel_bin, body, "--isolation", isolation)
    context = created.structured_content["id"]
    assert created.structured_content["isolation"] == isolation
    assert text_of(run) == f"{tmp_path} hello\n"
    contexts = listed.structured_content["contexts"]
    assert contexts[0]["id"] == "default" and contexts[0]["isolation"] == isolation
    assert {"id": context, "isolation": isolation} in [{k: c[k] for k in ("id", "isolation")} for c in contexts]
    assert not deleted.is_error


def test_exception_is_an_error_result_with_the_traceback(pykernel_bin, isolation):
    async def body(client):
        return await client.call_tool("run_python", {"code": "def f():\n    return undefined_name\nf()"})
    result = session(pykernel_bin, body, "--isolation", isolation)
    assert result.is_error
    text = text_of(result)
    assert text.startswith("Traceback (most recent call last):\n")
    assert text.endswith("NameError: name 'undefined_name' is not defined\n")
    assert result.structured_content["error"]["name"] == "NameError"


def test_timeout_stops_the_run_and_keeps_the_context(pykernel_bin, isolation):
    async def body(client):
        started = time.monotonic()
        stopped = await client.call_tool("run_python", {"code": "kept = 1\nimport time\ntime.sleep(30)", "timeout": 0.5})
        elapsed = time.monotonic() - started
        after = await client.call_tool("run_python", {"code": "print(kept)"})
        return stopped, elapsed, after
    stopped, elapsed, after = session(pykernel_bin, body, "--isolation", isolation)
    assert stopped.is_error
    assert stopped.structured_content["status"] == "timeout"
    assert elapsed < 10
    assert text_of(after) == "1\n"


def test_a_timeout_too_short_to_count_is_the_shortest(pykernel_bin, isolation):
    """`timeout` 1e-300 was a zero Duration, refused as not positive; it times out at once."""
    async def body(client):
        run = await client.call_tool("run_python", {"code": "import time\ntime.sleep(5)", "timeout": 1e-300})
        command = await client.call_tool("run_command", {"command": "sleep 5", "timeout": 1e-300})
        return run, command
    run, command = session(pykernel_bin, body, "--isolation", isolation)
    assert run.structured_content["status"] == "timeout", run
    assert run.structured_content["error"]["value"] == "execution exceeded the 1e-18 s timeout"
    assert command.structured_content["timed_out"] is True, command


def test_long_output_keeps_head_and_tail_with_a_note(pykernel_bin):
    async def body(client):
        return await client.call_tool("run_python", {"code": "print('a' * 5000 + 'b' * 5000, end='')"})
    result = session(pykernel_bin, body, "--max-output-bytes", "1000")
    text = text_of(result)
    assert text.startswith("a" * 500 + "\n[… 9000 bytes of stdout cut here")
    assert text.endswith("…]\n" + "b" * 500)
    assert result.structured_content["stdout_omitted_bytes"] == 9000


@pytest.mark.parametrize("limit, code, text", [
    # Half the limit falls inside an 'é': the engine keeps a head of 499 bytes.
    ("1000", "print('a' + 'é' * 600 + 'Z' * 2000, end='')", "a" + "é" * 249
     + "\n[… 2202 bytes of stdout cut here: the output limit kept the first 499 and the last 500 bytes …]\n" + "Z" * 500),
    # A head of 1 byte falls inside the emoji: nothing of it is kept, the tail is "b\n".
    ("3", "print('😀' + 'x' * 10 + 'b')", "\n[… 14 bytes of stdout cut here: the output limit kept the first 0 and the last 2 bytes …]\nb\n"),
], ids=["head-ends-in-a-character", "tiny-odd-limit"])
def test_the_cut_note_sits_where_the_engine_cut(pykernel_bin, isolation, limit, code, text):
    """The note was placed at half the limit of the joined head and tail: when that fell inside a
    character, the head the engine kept was shorter, and the tail's first bytes showed before
    the note (`…éZ\n[… cut here …]\nZZ…`; at `--max-output-bytes 3` the whole tail). The note said
    "keeps the first and last N bytes" with N half the limit; it says what was kept. So for
    `run_command`."""
    async def body(client):
        return (await client.call_tool("run_python", {"code": code}),
                await client.call_tool("run_command", {"command": "python3 -c " + shlex.quote(code)}))
    run, command = session(pykernel_bin, body, "--max-output-bytes", limit, "--isolation", isolation)
    assert text_of(run) == text
    assert [item.text for item in command.content] == [text, "[exit code 0]"]


def test_the_cut_note_sits_where_the_engine_cut_in_a_run_whose_worker_was_killed(pykernel_bin):
    """A process context's run that ignores its timeout is answered by the server (its worker
    killed), with the output it had relayed: the note sits where that output's head ends, as in
    a result the worker wrote (the head is 499 bytes, the limit's half falling inside an 'é')."""
    code = ("import sys, time\nsys.stdout.write('a' + 'é' * 600 + 'Z' * 2000)\nsys.stdout.flush()\n"
            "while True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass")

    async def body(client):
        return await client.call_tool("run_python", {"code": code, "timeout": 0.2})
    result = session(pykernel_bin, body, "--isolation", "process", "--timeout-grace", "0.3", "--max-output-bytes", "1000")
    assert result.structured_content["status"] == "timeout" and result.structured_content["stdout_head_bytes"] == 499
    assert result.content[0].text == ("a" + "é" * 249 + "\n[… 2202 bytes of stdout cut here: the output limit kept the first 499"
                                      " and the last 500 bytes …]\n" + "Z" * 500)


def test_a_cut_traceback_and_rich_text_say_so_in_this_fronts_words(pykernel_bin):
    """A traceback or a result's text cut at the output limit named the protocol's
    `max_output_bytes`, which MCP has not: the note reads as the output's does (a result's
    note said "[…  bytes of text/plain cut here", its count lost)."""
    async def body(client):
        raised = await client.call_tool("run_python", {"code": "raise ValueError('v' * 3000)"})
        shown = await client.call_tool("run_python", {"code": "'w' * 3000"})
        return raised, shown
    raised, shown = session(pykernel_bin, body, "--max-output-bytes", "1000")
    [traceback] = [item.text for item in raised.content]
    assert "\n[… " in traceback and " bytes of the traceback cut here: the output limit kept the first 500 and the last 500 bytes …]\n" in traceback
    assert "max_output_bytes" not in traceback
    assert traceback.endswith("v" * 100 + "\n")
    [text] = [item.text for item in shown.content]
    assert text == ("'" + "w" * 499 + "\n[… 2002 bytes of text/plain cut here: the output limit kept the first 500 and the last 500 bytes …]\n"
                    + "w" * 499 + "'")


def test_a_cut_svg_or_javascript_result_says_so_in_this_fronts_words(pykernel_bin):
    """An SVG or a script shown without `text/plain` came back whole past the output limit (only
    `text/*` was cut): it is cut as any text, and the note says which representation."""
    async def body(client):
        return await client.call_tool("run_python", {"code": (
            "display({'image/svg+xml': '<svg>' + 's' * 3000 + '</svg>'}, raw=True)\n"
            "display({'application/javascript': 'j' * 3000}, raw=True)")})
    result = session(pykernel_bin, body, "--max-output-bytes", "1000")
    svg, script = [item.text for item in result.content]
    assert svg == "<svg>" + "s" * 495 + "\n[… 2011 bytes of image/svg+xml cut here: the output limit kept the first 500 and the last 500 bytes …]\n" + "s" * 494 + "</svg>"
    assert script == "j" * 500 + "\n[… 2000 bytes of application/javascript cut here: the output limit kept the first 500 and the last 500 bytes …]\n" + "j" * 500


def test_a_bundle_left_empty_adds_no_content(pykernel_bin):
    """A published bundle whose only representation was left out is a result without data: it
    added an empty text item; the stderr line says what was left out."""
    async def body(client):
        return await client.call_tool("run_python", {"code": "display({'image/png': 'not base64!!'}, raw=True)"})
    result = session(pykernel_bin, body)
    assert [item.text for item in result.content] == [
        "[stderr]\ndisplay() got text that is not base64 for image/png; that representation is left out\n"]
    assert result.structured_content["results"] == [{"data": {}, "metadata": {}, "is_main_result": False, "chart": None}]


def test_a_run_that_leaves_its_context_dead_says_so(pykernel_bin):
    """A process context's run that ignores its timeout has its worker killed: the content says
    the context is dead and which tools help, as for a crash (it only named `context.restart`,
    a method MCP does not have)."""
    async def body(client):
        code = ("import time\nwhile True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass")
        return await client.call_tool("run_python", {"code": code, "timeout": 0.2})
    result = session(pykernel_bin, body, "--isolation", "process", "--timeout-grace", "0.3")
    assert result.is_error and result.structured_content["status"] == "timeout"
    assert result.content[-1].text == "[the context is dead: restart_context gives it a fresh worker process]"


def test_progress_notifications_carry_the_output_as_it_is_printed(pykernel_bin, isolation):
    async def body(client):
        messages = []

        async def progress(value, total, message):
            messages.append(message)
        result = await client.call_tool(
            "run_python", {"code": "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.05)"},
            progress_callback=progress)
        return result, messages
    result, messages = session(pykernel_bin, body, "--isolation", isolation)
    assert "".join(messages) == "0\n1\n2\n"
    assert len(messages) >= 2, "output should arrive while the code runs, not only at the end"
    assert text_of(result) == "0\n1\n2\n"


def test_cancelling_a_call_interrupts_its_run_and_keeps_the_state(pykernel_bin, isolation):
    async def body(client):
        with anyio.move_on_after(1.0):
            await client.call_tool("run_python", {"code": "state = 'kept'\nwhile True:\n    pass"})
        started = time.monotonic()
        after = await client.call_tool("run_python", {"code": "print(state)", "timeout": 20})
        return after, time.monotonic() - started
    after, elapsed = session(pykernel_bin, body, "--isolation", isolation)
    assert text_of(after) == "kept\n"
    assert elapsed < 5, "the cancelled loop should have been interrupted"


def test_concurrent_calls_on_two_contexts_and_control_calls_during_a_run(pykernel_bin, isolation):
    async def body(client):
        a = (await client.call_tool("create_context", {})).structured_content["id"]
        b = (await client.call_tool("create_context", {})).structured_content["id"]
        results = {}

        async def run(name, context, code):
            results[name] = await client.call_tool("run_python", {"code": code, "context": context})

        async def control():
            await anyio.sleep(0.2)
            started = time.monotonic()
            results["list"] = await client.call_tool("list_contexts", {})
            results["list_seconds"] = time.monotonic() - started

        async with anyio.create_task_group() as group:
            group.start_soon(run, "a", a, "import time\ntime.sleep(1)\nwho = 'a'\nprint(who)")
            group.start_soon(run, "b", b, "who = 'b'\nprint(who)")
            group.start_soon(control)
        again = await client.call_tool("run_python", {"code": "print(who)", "context": a})
        return results, again
    results, again = session(pykernel_bin, body, "--isolation", isolation)
    assert text_of(results["a"]) == "a\n"
    assert text_of(results["b"]) == "b\n"
    assert results["list_seconds"] < 0.5, "list_contexts waited for a run"
    assert text_of(again) == "a\n"


def test_run_command(pykernel_bin, tmp_path):
    async def body(client):
        return await client.call_tool("run_command", {
            "command": "pwd; echo $X; echo oops >&2; exit 3", "cwd": str(tmp_path), "env": {"X": "y"}})
    result = session(pykernel_bin, body)
    assert result.is_error
    assert result.structured_content["exit_code"] == 3
    assert result.structured_content["stdout"] == f"{tmp_path}\ny\n"
    assert result.structured_content["stderr"] == "oops\n"


@pytest.mark.parametrize("name, arguments, code, message", [
    ("run_python", {}, "invalid_argument", "argument 'code' is required"),
    ("run_python", {"code": 1}, "invalid_argument", "argument 'code' must be a string"),
    ("run_python", {"code": "1", "timeout": -1}, "invalid_argument", "argument 'timeout' must be a number of seconds >= 0"),
    ("run_python", {"code": "1", "env": {"A": 1}}, "invalid_argument", "argument 'env.A' must be a string"),
    ("run_python", {"code": "1", "env": {"A=B": "x"}}, "invalid_argument", "Environment variable names must be non-empty"),
    ("run_python", {"code": "1", "colour": "red"}, "invalid_argument", "unknown argument 'colour'"),
    ("run_python", {"code": "1", "context": "no-such-context"}, "context_not_found", "No context has the ID 'no-such-context'"),
    ("create_context", {"cwd": "/no/such/dir"}, "invalid_cwd", "'/no/such/dir' does not exist"),
    ("create_context", {"isolation": "thread"}, "invalid_argument", "argument 'isolation' must be \"namespace\" or \"process\""),
    ("restart_context", {"id": "no-such-context"}, "context_not_found", "No context has the ID 'no-such-context'"),
    ("delete_context", {"id": "default"}, "default_context_undeletable", "default"),
    ("run_command", {"command": "true", "cwd": "/no/such/dir"}, "invalid_cwd", "'/no/such/dir' does not exist"),
])
def test_bad_calls_are_tool_errors_the_model_reads_and_the_server_stays_up(pykernel_bin, name, arguments, code, message, isolation):
    """MCP 2025-11-25 (what the SDK agrees to here) makes a bad argument and a refusal tool
    execution errors, results with `isError` that the model reads: they were JSON-RPC errors,
    which the SDK raises in the agent's code. The stable code is in the text and in
    `structuredContent.error`."""
    async def body(client):
        await client.call_tool("run_python", {"code": "kept = 'yes'"})
        refused = await client.call_tool(name, arguments)
        after = await client.call_tool("run_python", {"code": "print(kept)"})
        return refused, after
    refused, after = session(pykernel_bin, body, "--isolation", isolation)
    assert refused.is_error
    error = refused.structured_content["error"]
    assert error["code"] == code and message in error["message"], error
    assert text_of(refused) == f"{code}: {error['message']}"
    assert text_of(after) == "yes\n"


@pytest.mark.parametrize("name, arguments, message", [
    ("no_such_tool", {}, "Unknown tool 'no_such_tool'"),
    # A guessed tool with a plausible argument: the name is what is wrong, not the argument.
    ("execute_python", {"code": "print(1)"}, "Unknown tool 'execute_python'; the tools are run_python"),
])
def test_an_unknown_tool_is_a_json_rpc_error(pykernel_bin, name, arguments, message):
    async def body(client):
        with pytest.raises(MCPError) as caught:
            await client.call_tool(name, arguments)
        return caught.value
    error = session(pykernel_bin, body)
    assert error.error.code == -32602 and message in str(error)


@pytest.mark.parametrize("version", ["2024-11-05", "2025-06-18", "2025-11-25", "2026-07-28"])
def test_a_bad_argument_is_a_json_rpc_error_before_protocol_2025_11_25_and_a_refusal_never(pykernel_bin, version):
    """Before 2025-11-25 MCP has input validation errors as JSON-RPC errors (-32602, as they
    were); from it on (SEP-1303), and under a version the server does not speak (it agrees to
    2025-11-25), they are tool execution errors. A refusal (an unknown context) is a tool
    execution error under every version."""
    handshake = [{**HANDSHAKE[0], "params": {**HANDSHAKE[0]["params"], "protocolVersion": version}}, HANDSHAKE[1]]
    calls = [{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run_python", "arguments": {"code": 1}}},
             {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
                 "name": "run_python", "arguments": {"code": "1", "context": "nope"}}}]
    server = raw_server(pykernel_bin, "namespace")
    stdout, _ = server.communicate(b"".join(json.dumps(line).encode() + b"\n" for line in handshake + calls), timeout=60)
    answers = {answer["id"]: answer for answer in map(json.loads, stdout.decode().splitlines())}
    mistyped = "run_python: argument 'code' must be a string"
    if version < "2025-11-25":
        assert answers[2]["error"] == {"code": -32602, "message": "Invalid params: " + mistyped, "data": {"detail": mistyped}}
    else:
        assert answers[2]["result"] == {"isError": True, "content": [{"type": "text", "text": "invalid_argument: " + mistyped}],
                                        "structuredContent": {"error": {"code": "invalid_argument", "message": mistyped, "field": "code"}}}
    refused = answers[3]["result"]
    assert refused["isError"] and refused["structuredContent"]["error"]["code"] == "context_not_found", answers[3]


HANDSHAKE = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]


def raw_server(pykernel_bin, isolation):
    """`pykernel mcp` with pipes, for a test that writes the protocol's lines itself."""
    return subprocess.Popen([pykernel_bin, "mcp", "--isolation", isolation], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def initialized_raw_server(pykernel_bin, isolation):
    """``raw_server`` past the handshake, and a function that writes one message to it."""
    server = raw_server(pykernel_bin, isolation)

    def send(message):
        server.stdin.write((json.dumps(message) + "\n").encode())
        server.stdin.flush()
    for message in HANDSHAKE:
        send(message)
    assert json.loads(server.stdout.readline())["id"] == 1
    return server, send


def test_end_of_input_ends_the_server(pykernel_bin, isolation):
    # A host closing the pipe (the agent exited) must not leave pykernel (or a worker) running.
    server = raw_server(pykernel_bin, isolation)
    requests = HANDSHAKE + [
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_python", "arguments": {"code": "import os\nos.system('echo on-fd-1')\nprint('done')\nos.getpid()"}}},
    ]
    for request in requests:
        server.stdin.write((json.dumps(request) + "\n").encode())
    server.stdin.flush()
    responses = [json.loads(server.stdout.readline()) for _ in range(2)]
    assert responses[0]["result"]["serverInfo"]["name"] == "pykernel"
    structured = responses[1]["result"]["structuredContent"]
    assert structured["stdout"] == "on-fd-1\ndone\n"
    runner = int(structured["results"][0]["data"]["text/plain"])
    assert (runner == server.pid) == (isolation == "namespace")
    server.stdin.close()
    assert server.wait(timeout=20) == 0
    assert not os.path.exists(f"/proc/{runner}"), "the worker outlived the server"
    assert server.stdout.read() == b"", "nothing but protocol messages on stdout"


def test_requests_written_before_the_end_of_input_are_all_answered(pykernel_bin, isolation):
    """A client that writes its requests and closes its end (`printf ... | pykernel mcp`) gets
    the answers of the calls that finish within 2 s (the server ended with the input and dropped
    every call still running); a call still running then does not keep the server (closing stdin
    is how MCP clients shut a stdio server down): it is stopped, answered `interrupted`. A line
    that is not JSON is a parse error with a null id (was a random id)."""
    server = raw_server(pykernel_bin, isolation)
    requests = HANDSHAKE + [
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_python", "arguments": {"code": "import time\ntime.sleep(0.5)\nprint('slept')"}}},
        {"jsonrpc": "2.0", "id": "list", "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "run_python", "arguments": {}}},
        {"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {
            "name": "run_python", "arguments": {"code": "import time\ntime.sleep(120)"}}},
    ]
    lines = [json.dumps(request).encode() for request in requests] + [b"{not json", b"   "]
    started = time.monotonic()
    stdout, _ = server.communicate(b"\n".join(lines) + b"\n", timeout=60)
    assert server.returncode == 0 and time.monotonic() - started < 30
    answers = {json.dumps(answer.get("id")): answer for answer in map(json.loads, stdout.decode().splitlines())}
    assert set(answers) == {"1", "2", '"list"', "3", '"long"', "null"}, answers
    assert answers['"long"']["result"]["structuredContent"]["status"] == "interrupted"
    assert answers["2"]["result"]["structuredContent"]["stdout"] == "slept\n"
    assert any(tool["name"] == "run_python" for tool in answers['"list"']["result"]["tools"])
    assert "'code' is required" in answers["3"]["error"]["message"]
    assert answers["null"]["error"]["code"] == -32700


def test_calls_written_one_after_another_reach_the_engine_in_that_order(pykernel_bin, isolation):
    """A client that writes its calls without waiting (300 runs on one context, then a run
    reading what they did) gets them run in the order written: the SDK starts a task per request,
    and the runs reached the engine in the order those tasks happened to start."""
    calls = [{"jsonrpc": "2.0", "id": index, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "order = []" if index == 0 else f"order.append({index})"}}}
        for index in range(300)]
    calls.append({"jsonrpc": "2.0", "id": "check", "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "print(order == list(range(1, 300)))"}}})
    server = raw_server(pykernel_bin, isolation)
    stdout, _ = server.communicate(b"".join(json.dumps(line).encode() + b"\n" for line in HANDSHAKE + calls), timeout=120)
    answers = {answer.get("id"): answer for answer in map(json.loads, stdout.decode().splitlines())}
    assert answers["check"]["result"]["content"] == [{"type": "text", "text": "True\n"}], answers["check"]
    assert all(answers[index]["result"]["isError"] is False for index in range(300))


def test_malformed_messages_get_invalid_request_with_a_null_id(pykernel_bin):
    """JSON that is not a request the SDK answers: before, a request with a null, fractional,
    boolean or object id got no answer at all, and `[]` or `5` an answer under a random id. An
    integer id past 64 bits (which the SDK cannot echo) is refused saying so."""
    bad_ids = (None, 2.5, True, {"a": 1}, 9223372036854775808, 123456789012345678901234567890)
    lines = [json.dumps(HANDSHAKE[0]).encode()] + [
        json.dumps({"jsonrpc": "2.0", "id": bad, "method": "tools/list"}).encode() for bad in bad_ids
    ] + [b"[]", b"5", json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).encode()]
    server = raw_server(pykernel_bin, "namespace")
    stdout, _ = server.communicate(b"\n".join(lines) + b"\n", timeout=60)
    answers = [json.loads(line) for line in stdout.decode().splitlines()]
    errors = [answer for answer in answers if "error" in answer]
    assert [(answer["id"], answer["error"]["code"]) for answer in errors] == [(None, -32600)] * 8, errors
    assert errors[-3]["error"]["message"] == (
        "Invalid Request: a request's id must be a string or an integer of at most 64 bits (never null in MCP)")
    assert sorted(answer["id"] for answer in answers if "result" in answer) == [1, 7]


def test_malformed_calls_and_messages_that_are_not_json_rpc_say_what_is_wrong(pykernel_bin):
    """Params the SDK cannot decode are -32602 naming the field (were -32603 "The data isn't in
    the correct format"); JSON that is not JSON-RPC is -32600 echoing its id (was -32700 "Invalid
    message format"); the server answers what follows."""
    call = {"jsonrpc": "2.0", "method": "tools/call"}
    lines = [HANDSHAKE[0],
             {**call, "id": 2},
             {**call, "id": 3, "params": {"arguments": {"code": "1"}}},
             {**call, "id": 4, "params": {"name": 5}},
             {**call, "id": 5, "params": {"name": "run_python", "arguments": ["print(1)"]}},
             {**call, "id": 6, "params": {"name": "run_python", "arguments": "code"}},
             {**call, "id": 7, "params": {"name": "run_python", "arguments": {"code": "1"}, "_meta": 5}},
             {"jsonrpc": "2.0", "id": 8, "method": "tools/list", "params": 5},
             {"jsonrpc": "1.0", "id": 9, "method": "ping"},
             {"id": "ten", "method": "ping"},
             {"jsonrpc": "2.0", "id": 11},
             {"jsonrpc": "2.0", "id": 12, "method": 5},
             {"jsonrpc": "2.0", "method": 5},
             {"jsonrpc": "2.0", "id": 14, "method": "tools/list", "params": {"cursor": 5}},
             {"jsonrpc": "2.0", "id": 15, "method": "initialize"},
             {"jsonrpc": "2.0", "id": 16, "method": "initialize", "params": {"capabilities": {}, "clientInfo": {"name": "c", "version": "1"}}},
             {"jsonrpc": "2.0", "id": 17, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": [],
                                                                             "clientInfo": {"name": "c", "version": "1"}}},
             {"jsonrpc": "2.0", "id": 18, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}}},
             {"jsonrpc": "2.0", "id": 19, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                                             "clientInfo": {"name": "c"}}},
             {"jsonrpc": "2.0", "id": 20, "method": "initialize", "params": {"protocolVersion": 5, "capabilities": {},
                                                                             "clientInfo": {"name": "c", "version": "1"}}},
             {**call, "id": 21, "params": {"name": "list_contexts", "arguments": {"x": 1}}},
             {"jsonrpc": "2.0", "id": 22, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                                                                             "capabilities": {"experimental": 5},
                                                                             "clientInfo": {"name": "c", "version": "1"}}},
             {"jsonrpc": "2.0", "id": 23, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                                                                             "capabilities": {"roots": {"listChanged": "yes"}},
                                                                             "clientInfo": {"name": "c", "version": "1"}}},
             {"jsonrpc": "2.0", "id": 24, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                                             "clientInfo": {"name": "c", "version": "1",
                                                                                            "icons": [{"src": "a"}, {"src": 5}]}}},
             {**call, "id": 13, "params": {"name": "run_python", "arguments": {"code": "print('fine')"}}}]
    server = raw_server(pykernel_bin, "namespace")
    stdout, _ = server.communicate(b"".join(json.dumps(line).encode() + b"\n" for line in lines), timeout=60)
    answers = {answer["id"]: answer for answer in map(json.loads, stdout.decode().splitlines())}
    errors = {id: (answer["error"]["code"], answer["error"]["message"]) for id, answer in answers.items() if "error" in answer}
    params, request = "Invalid params: ", "Invalid Request: "
    assert errors == {
        2: (-32602, params + 'tools/call: "params" is required (an object with the tool\'s "name" and its "arguments")'),
        3: (-32602, params + 'tools/call: "params.name" is required (the tool\'s name, a string)'),
        4: (-32602, params + 'tools/call: "params.name" must be a string (the tool\'s name), got number'),
        5: (-32602, params + 'tools/call: "params.arguments" must be an object, got array'),
        6: (-32602, params + 'tools/call: "params.arguments" must be an object, got string'),
        7: (-32602, params + 'tools/call: "params._meta" must be an object, got number'),
        8: (-32602, params + '"params" must be an object, got number'),
        9: (-32600, request + '"jsonrpc" must be "2.0"'),
        "ten": (-32600, request + 'missing "jsonrpc": "2.0"'),
        11: (-32600, request + '"method" is required (a string)'),
        12: (-32600, request + '"method" must be a string, got number'),
        None: (-32600, request + '"method" must be a string, got number'),
        14: (-32602, params + 'tools/list: "params.cursor" must be a string (the nextCursor of an earlier page), got number'),
        15: (-32602, params + 'initialize: "params" is required (protocolVersion, capabilities, clientInfo)'),
        16: (-32602, params + 'initialize: "params.protocolVersion" is required (a string such as "2025-06-18")'),
        17: (-32602, params + 'initialize: "params.capabilities" is required (an object, {} for none)'),
        18: (-32602, params + 'initialize: "params.clientInfo" is required (an object with the client\'s "name" and "version")'),
        19: (-32602, params + 'initialize: "params.clientInfo.version" is required (a string)'),
        20: (-32602, params + 'initialize: "params.protocolVersion" must be a string such as "2025-06-18"'),
        21: (-32602, params + "list_contexts: unknown argument 'x' (it takes no arguments)"),
        # Members the SDK cannot decode, named by their path (were -32603 "The data isn't in the correct format").
        22: (-32602, params + 'initialize: "params.capabilities.experimental" must be an object (one member per capability), got number'),
        23: (-32602, params + 'initialize: "params.capabilities.roots.listChanged" must be a boolean, got string'),
        24: (-32602, params + 'initialize: "params.clientInfo.icons[1].src" must be a string, got number'),
    }, errors
    assert answers[2]["error"]["data"] == {"detail": 'tools/call: "params" is required (an object with the tool\'s "name" and its "arguments")'}
    assert answers[13]["result"]["content"] == [{"type": "text", "text": "fine\n"}]


def test_a_cursor_the_server_did_not_give_and_a_null_timeout_are_refused(pykernel_bin):
    """`tools/list` with a cursor returned the whole list whatever the cursor (MCP: an invalid
    cursor is -32602; every tool is on the first page), and a null cursor was taken as none
    (docs/mcp.md: a cursor that is not a string is -32602). `"timeout": null` silently meant the
    default 600 s (a model may mean "no timeout" by it): refused, as any mistyped argument; other
    arguments given as null are taken as absent."""
    call = {"jsonrpc": "2.0", "method": "tools/call"}
    lines = [HANDSHAKE[0],
             {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": "abc"}},
             {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": None}},
             {"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}},
             {**call, "id": 5, "params": {"name": "run_python", "arguments": {"code": "print(1)", "timeout": None}}},
             {**call, "id": 6, "params": {"name": "run_command", "arguments": {"command": "echo 1", "timeout": None}}},
             {**call, "id": 7, "params": {"name": "run_python", "arguments": {"code": "print(2)", "context": None, "env": None}}}]
    server = raw_server(pykernel_bin, "namespace")
    stdout, _ = server.communicate(b"".join(json.dumps(line).encode() + b"\n" for line in lines), timeout=60)
    answers = {answer["id"]: answer for answer in map(json.loads, stdout.decode().splitlines())}
    assert answers[2]["error"]["code"] == -32602, answers[2]
    assert "unknown cursor 'abc'" in answers[2]["error"]["message"]
    assert answers[3]["error"] == {"code": -32602, "message": 'Invalid params: tools/list: "params.cursor" must be a string (the nextCursor of an earlier page), got null',
                                   "data": {"detail": 'tools/list: "params.cursor" must be a string (the nextCursor of an earlier page), got null'}}
    assert len(answers[4]["result"]["tools"]) == 7
    for id, tool in ((5, "run_python"), (6, "run_command")):
        assert answers[id]["error"]["code"] == -32602, answers[id]  # protocol 2025-06-18: a JSON-RPC error
        assert answers[id]["error"]["message"] == (f"Invalid params: {tool}: argument 'timeout' must be a number of seconds >= 0, "
                                                   "not null (0 for none; leave it out for the default)")
    assert answers[7]["result"]["content"] == [{"type": "text", "text": "2\n"}]


def test_a_cancelled_call_is_stopped_and_not_answered(pykernel_bin, isolation):
    """MCP: no response to a cancelled request (the interrupted run's result was sent, a
    KeyboardInterrupt traceback under the cancelled id). The request counts as answered: at the
    end of input the server does not wait for it."""
    server, send = initialized_raw_server(pykernel_bin, isolation)
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "state = 'kept'\nprint('sleeping', flush=True)\nimport time\ntime.sleep(30)"},
        "_meta": {"progressToken": "sleep"}}})
    assert json.loads(server.stdout.readline())["params"]["message"] == "sleeping\n"
    send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3, "reason": "test"}})
    send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "print(state)"}}})
    messages = []
    while not messages or messages[-1].get("id") != 4:
        messages.append(json.loads(server.stdout.readline()))
    time.sleep(0.5)  # time for an answer to the cancelled call to come out (it did)
    stdout, stderr = server.communicate(timeout=60)
    assert server.returncode == 0
    answers = [answer for answer in messages + list(map(json.loads, stdout.decode().splitlines())) if "id" in answer]
    assert [answer["id"] for answer in answers] == [4], answers
    assert answers[0]["result"]["content"] == [{"type": "text", "text": "kept\n"}]
    assert b"still running" not in stderr, stderr.decode()


def test_numbers_of_a_json_result_are_exact_in_structured_content(pykernel_bin, isolation):
    """An integer past 64 bits of a JSON representation was a float in `structuredContent` (as
    in `pykernel serve`'s result): it is written as Python wrote it, as is every number of it;
    the SDK's client reads it exactly."""
    code = ("class J:\n    def _repr_json_(self): return {'id': 12345678901234567890123, 'f': 1e15, 'n': [-2**70, 7]}\n"
            "display('m', metadata={'big': 2**64 + 1})\nJ()")
    server, send = initialized_raw_server(pykernel_bin, isolation)
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run_python", "arguments": {"code": code}}})
    # A float read as its text: what the line says, not only the value it denotes.
    answer = json.loads(server.stdout.readline(), parse_float=lambda text: ("float", text))
    server.stdin.close()
    assert server.wait(timeout=20) == 0
    meta, main = answer["result"]["structuredContent"]["results"]
    assert meta["metadata"] == {"big": 2**64 + 1}
    assert main["data"]["application/json"] == {"id": 12345678901234567890123, "f": ("float", "1000000000000000.0"), "n": [-2**70, 7]}

    async def body(client):
        return await client.call_tool("run_python", {"code": code})
    result = session(pykernel_bin, body, "--isolation", isolation)
    assert result.structured_content["results"][1]["data"]["application/json"] == {
        "id": 12345678901234567890123, "f": 1e15, "n": [-2**70, 7]}


# Lines the SDK's decoder refused (a parse error under a made-up id; the call never answered),
# and what their call prints once read as `pykernel serve` reads them.
LINES_THE_SDK_REFUSED = {
    # A lone surrogate escape runs with U+FFFD in its place.
    "a lone surrogate escape": (b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"run_python",'
                                b'"arguments":{"code":"print(ascii(\'\\ud800\'))"}}}\n', "'\\ufffd'\n"),
    # `1e400` is JSON, read as the largest number: a timeout that long is none.
    "a number past the range of a double": (b'{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"run_python",'
                                            b'"arguments":{"code":"print(2)","timeout":1e400},"extra":-1e999}}\n', "2\n"),
}


@pytest.mark.parametrize("case", LINES_THE_SDK_REFUSED)
def test_a_line_the_sdk_refused_is_answered_under_its_id(pykernel_bin, case):
    line, printed = LINES_THE_SDK_REFUSED[case]
    server, send = initialized_raw_server(pykernel_bin, "namespace")
    server.stdin.write(line)
    server.stdin.flush()
    answer = json.loads(server.stdout.readline())
    server.communicate(timeout=30)
    assert answer["id"] == 8 and answer["result"]["content"] == [{"type": "text", "text": printed}], answer


@pytest.mark.parametrize("repeated", ["id", "code"])
def test_a_message_repeating_a_key_is_read_with_its_last_value(pykernel_bin, repeated):
    """A JSON object that repeats a key is read with its last value, as `pykernel serve` reads it
    (and Python's `json`). The SDK's decoder kept the first: a call with `"id"` twice was
    answered under the first id while the transport waited for the last (2 s and a warning at
    the end of input), and a repeated argument ran its first value."""
    server, send = initialized_raw_server(pykernel_bin, "namespace")
    if repeated == "id":
        line = (b'{"jsonrpc":"2.0","id":5,"method":"tools/call","id":6,"params":{"name":"run_python",'
                b'"arguments":{"code":"print(6)"}}}\n')
    else:
        line = (b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"run_python",'
                b'"arguments":{"code":"print(5)","code":"print(6)"}}}\n')
    server.stdin.write(line)
    server.stdin.flush()
    answer = json.loads(server.stdout.readline())
    started = time.monotonic()
    _, stderr = server.communicate(timeout=30)  # the end of input
    assert (answer["id"], answer["result"]["content"]) == (6, [{"type": "text", "text": "6\n"}]), answer
    assert time.monotonic() - started < 1.5 and b"still running" not in stderr, stderr.decode()


def answers_to_the_end(server, after):
    """The messages the server writes, by id, until the answer to ``after``, then (its input
    ended) what else it answers until its output ends, and when the answer to ``after`` came
    (``time.monotonic()``); checks that it exits 0."""
    answers = {}
    while after not in answers:
        message = json.loads(server.stdout.readline())
        answers[message.get("id")] = message
    answered_at = time.monotonic()
    server.stdin.close()
    for line in server.stdout:
        message = json.loads(line)
        answers[message.get("id")] = message
    assert server.wait(timeout=60) == 0
    return answers, answered_at


def test_a_call_cancelled_while_queued_runs_unanswered(pykernel_bin, isolation, tmp_path):
    """docs/mcp.md: a call still queued behind another run of the same context when it is
    cancelled runs when its turn comes, and its result is not sent (in a namespace context it
    was dropped: the next run saw neither its variable nor its file)."""
    server, send = initialized_raw_server(pykernel_bin, isolation)
    marker = tmp_path / "ran"
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "import time\ntime.sleep(1)"}}})
    send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": f"queued = 7\nopen({str(marker)!r}, 'w').close()"}}})
    send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4, "reason": "test"}})
    send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "print(queued)"}}})
    answers, _ = answers_to_the_end(server, after=5)
    assert sorted(answers) == [3, 5], answers
    assert answers[5]["result"]["content"] == [{"type": "text", "text": "7\n"}]
    assert answers[5]["result"]["structuredContent"]["execution_count"] == 3
    assert marker.exists()


def test_a_cancelled_call_waiting_behind_another_contexts_run_never_runs(pykernel_bin, isolation, tmp_path):
    """docs/mcp.md: a cancel interrupts the call's run. A namespace context's run that waited
    while another context's run held the interpreter was not running yet: the interrupt missed
    it, it ran in full afterwards (its side effects, 5 s the next call of its context waited)."""
    server, send = initialized_raw_server(pykernel_bin, isolation)
    marker = tmp_path / "ran"
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "create_context", "arguments": {}}})
    other = json.loads(server.stdout.readline())["result"]["structuredContent"]["id"]
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "import time\ntime.sleep(1)"}}})
    send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "run_python", "arguments": {
        "context": other, "code": f"import time\ntime.sleep(5)\nopen({str(marker)!r}, 'w').close()"}}})
    time.sleep(0.2)
    send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4, "reason": "test"}})
    send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"context": other, "code": "print('next')"}}})
    started = time.monotonic()
    answers, answered_at = answers_to_the_end(server, after=5)
    waited = answered_at - started
    assert sorted(answers) == [3, 5], answers
    assert answers[5]["result"]["content"] == [{"type": "text", "text": "next\n"}]
    assert waited < 4, f"the next call of the context waited {waited:.1f} s"
    assert not marker.exists()


def test_a_run_queued_behind_a_crash_is_answered_context_dead(pykernel_bin):
    """docs/mcp.md's errors: a call queued behind a run whose worker died is -32006 `context_dead`
    (it was an opaque -32603, "The operation could not be completed")."""
    server, send = initialized_raw_server(pykernel_bin, "process")
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "import os, time\ntime.sleep(0.3)\nos.kill(os.getpid(), 9)"}}})
    send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "run_python", "arguments": {"code": "print(1)"}}})
    answers = {}
    while 3 not in answers or 4 not in answers:
        message = json.loads(server.stdout.readline())
        answers[message.get("id")] = message
    server.stdin.close()
    assert server.wait(timeout=60) == 0
    refused = answers[4]["result"]
    assert refused["isError"] and refused["structuredContent"]["error"]["code"] == "context_dead", answers[4]
    # `default` cannot be deleted: what is said of it names the restart only.
    assert answers[3]["result"]["content"][-1]["text"] == "[the context is dead: restart_context gives it a fresh worker process]"
    message = refused["structuredContent"]["error"]["message"]
    assert message.endswith(" (tool: restart_context)") and "delete" not in message
    assert refused["content"] == [{"type": "text", "text": "context_dead: " + message}]


def test_a_run_queued_on_a_context_deleted_meanwhile_is_answered_context_deleted(pykernel_bin, isolation):
    """docs/mcp.md's errors: `context_deleted`, as `pykernel serve`'s (it was a bare -32000, then a
    JSON-RPC -32004: now a tool execution error)."""
    server, send = initialized_raw_server(pykernel_bin, isolation)
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "create_context", "arguments": {}}})
    context = json.loads(server.stdout.readline())["result"]["structuredContent"]["id"]
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "import time\nprint('go', flush=True)\ntime.sleep(30)", "context": context}}})
    send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "print('never')", "context": context}}})
    send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "delete_context", "arguments": {"id": context}}})
    answers = {}
    while not {3, 4, 5} <= set(answers):
        message = json.loads(server.stdout.readline())
        answers[message.get("id")] = message
    server.stdin.close()
    assert server.wait(timeout=60) == 0
    def error_code(answer):
        return answer["result"]["structuredContent"].get("error", {}).get("code") if answer["result"]["isError"] else None
    assert error_code(answers[4]) == "context_deleted", answers[4]
    assert "deleted" in answers[4]["result"]["content"][0]["text"]
    # The first run was stopped by the deletion (or, when its worker had not come yet, withdrawn).
    assert answers[3]["result"]["structuredContent"].get("status") == "interrupted" \
        or error_code(answers[3]) == "context_deleted", answers[3]


def test_a_namespace_default_is_not_told_to_delete_itself(pykernel_bin):
    async def body(client):
        other = (await client.call_tool("create_context", {})).structured_content["id"]
        messages = []
        for context in ("default", other):
            refused = await client.call_tool("restart_context", {"id": context})
            assert refused.is_error
            messages.append(text_of(refused))
        return other, messages
    other, (default, created) = session(pykernel_bin, body)
    assert "default is a namespace context (create a new context instead)." in default and "delete" not in default
    assert f"{other} is a namespace context (delete it and create a new one)." in created


def test_cancelling_a_call_whose_run_ended_leaves_the_next_run_alone(pykernel_bin, isolation):
    """A cancel that arrives as a run ends, or while its large output is still being read,
    interrupted the context's next run, which nobody cancelled (1 round in 10 even after checking
    that the run had not ended: the interrupt went to whichever run was in progress; it now names
    the run). In a process context the server learns that the run ended only from the worker's
    answer, behind its output, and the worker had started the next run meanwhile (it is now sent
    after that answer): docs/mcp.md."""
    server, send = initialized_raw_server(pykernel_bin, isolation)
    interrupted = 0
    for round in range(30):
        a, b = 10 + 2 * round, 11 + 2 * round
        send({"jsonrpc": "2.0", "id": a, "method": "tools/call", "params": {
            "name": "run_python", "arguments": {"code": "print('x' * 1_000_000)"}}})
        send({"jsonrpc": "2.0", "id": b, "method": "tools/call", "params": {
            "name": "run_python", "arguments": {"code": "import time\nfor i in range(20): time.sleep(0.01)"}}})
        time.sleep(0.001 * (round % 4))
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": a, "reason": "test"}})
        while True:
            message = json.loads(server.stdout.readline())
            if message.get("id") == b:
                interrupted += message["result"]["structuredContent"]["status"] == "interrupted"
                break
    server.stdin.close()
    assert server.wait(timeout=60) == 0
    assert interrupted == 0


def test_output_cut_to_nothing_still_says_how_much_was_cut(pykernel_bin):
    """`--max-output-bytes 0` keeps no byte of output: the content says how many were cut (it
    said "[no output]")."""
    async def body(client):
        return await client.call_tool("run_python", {"code": "import sys\nprint('x' * 20)\nprint('oops', file=sys.stderr)"})
    result = session(pykernel_bin, body, "--max-output-bytes", "0")
    assert [item.text for item in result.content] == [
        "\n[… 21 bytes of stdout cut here: the output limit kept the first 0 and the last 0 bytes …]\n",
        "[stderr]\n\n[… 5 bytes of stderr cut here: the output limit kept the first 0 and the last 0 bytes …]\n"]
    assert result.structured_content["stdout_omitted_bytes"] == 21
    assert result.structured_content["stderr_omitted_bytes"] == 5


def test_rich_results_become_content_and_images_are_image_content(pykernel_bin, isolation):
    code = (
        "import struct, zlib\n"
        "def chunk(kind, data):\n"
        "    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF)\n"
        "class Dot:\n"
        "    def _repr_png_(self):\n"
        "        header = struct.pack('>IIBBBBB', 1, 1, 8, 2, 0, 0, 0)\n"
        "        return (b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', header)\n"
        "                + chunk(b'IDAT', zlib.compress(b'\\x00\\xff\\x00\\x00')) + chunk(b'IEND', b''))\n"
        "print('drawing')\n"
        "display(Dot())\n"
        "6 * 7\n")

    async def body(client):
        return await client.call_tool("run_python", {"code": code})
    result = session(pykernel_bin, body, "--isolation", isolation)
    assert not result.is_error
    kinds = [item.type for item in result.content]
    assert kinds == ["text", "image", "text"]
    assert result.content[0].text == "drawing\n"
    image = result.content[1]
    assert image.mime_type == "image/png"
    import base64
    assert base64.b64decode(image.data).startswith(b"\x89PNG\r\n\x1a\n")
    assert result.content[2].text == "42"
    results = result.structured_content["results"]
    assert [r["is_main_result"] for r in results] == [False, True]
    # The image is sent once, in content (its base64 was in structuredContent too).
    assert set(results[0]["data"]) == {"text/plain"}
    assert results[1]["data"] == {"text/plain": "42"}


def test_images_past_the_output_limit_are_left_out_with_a_note_and_sent_once(pykernel_bin, isolation):
    """A run that made 50 large figures gave a tool result of all of them, each twice (as image
    content and as base64 in `structuredContent`): the images of one result are kept to
    `--max-image-bytes` bytes of base64 (not by the output limit), those from the first one past it on replaced by one
    text item saying how many were left out and how to see them, and `structuredContent` leaves
    the images' data out."""
    code = ("import base64\n"
            "for i in range(5):\n"
            "    display({'image/png': base64.b64encode(bytes([i]) * 3000).decode(), 'text/plain': f'<figure {i}>'}, raw=True)\n"
            "display({'image/jpeg': base64.b64encode(b'j' * 30).decode()}, raw=True)\n"
            "print('drawn')\n"
            "'done'")

    async def body(client):
        return await client.call_tool("run_python", {"code": code})
    result = session(pykernel_bin, body, "--isolation", isolation, "--max-output-bytes", "100", "--max-image-bytes", "10000")
    assert not result.is_error, text_of(result)
    # 4000 bytes of base64 each: two fit in 10000; the third, the two after it and the small JPEG
    # after them are left out (the images shown are the first ones, in order).
    assert [item.type for item in result.content] == ["text", "image", "image", "text", "text"]
    assert result.content[0].text == "drawn\n"
    import base64
    assert [base64.b64decode(item.data)[:1] for item in result.content[1:3]] == [b"\x00", b"\x01"]
    note = result.content[3].text
    assert note.startswith("[4 images left out from here (12040 bytes of base64): the images of one result are kept"
                           " to 10000 bytes (--max-image-bytes). Save figures to files (plt.savefig('fig1.png'))"), note
    assert result.content[4].text == "'done'"
    results = result.structured_content["results"]
    assert [r["data"] for r in results] == [{"text/plain": f"<figure {i}>"} for i in range(5)] + [{}, {"text/plain": "'done'"}]


def test_an_image_larger_than_the_output_limit_is_sent_under_the_default_image_limit(pykernel_bin):
    """Images have their own bound (2 MiB of base64): a figure larger than the text output limit
    (64 KiB of base64, a detailed chart) is still shown."""
    code = "import base64\ndisplay({'image/png': base64.b64encode(b'p' * 150000).decode()}, raw=True)"

    async def body(client):
        return await client.call_tool("run_python", {"code": code})
    result = session(pykernel_bin, body)
    assert [item.type for item in result.content] == ["image"], text_of(result)
    assert len(result.content[0].data) == 200000


def test_a_crash_answers_the_call_as_an_error_and_leaves_the_server_and_other_contexts_alive(pykernel_bin):
    async def body(client):
        other = (await client.call_tool("create_context", {"isolation": "process"})).structured_content["id"]
        victim = (await client.call_tool("create_context", {"isolation": "process"})).structured_content["id"]
        await client.call_tool("run_python", {"code": "kept = 'yes'", "context": other})
        crashed = await client.call_tool("run_python", {
            "code": "import os\nos.kill(os.getpid(), 9)", "context": victim})
        refused = await client.call_tool("run_python", {"code": "1", "context": victim})
        listed = await client.call_tool("list_contexts", {})
        intact = await client.call_tool("run_python", {"code": "print(kept)", "context": other})
        namespace = await client.call_tool("run_python", {"code": "print('namespace alive')"})
        restarted = await client.call_tool("restart_context", {"id": victim})
        fresh = await client.call_tool("run_python", {"code": "print('fresh')", "context": victim})
        return crashed, refused, listed, intact, namespace, restarted, fresh
    crashed, refused, listed, intact, namespace, restarted, fresh = session(pykernel_bin, body)
    assert crashed.is_error
    assert crashed.structured_content["status"] == "crashed"
    assert crashed.structured_content["error"]["name"] == "WorkerCrashed"
    assert text_of(crashed).startswith("WorkerCrashed: The worker process was killed by signal 9 (SIGKILL)")
    assert text_of(crashed).endswith("[the context is dead: restart_context gives it a fresh worker process, "
                                     "delete_context removes it]")
    # A tool execution error the model reads (it was a JSON-RPC -32006 error).
    assert refused.is_error and refused.structured_content["error"]["code"] == "context_dead", refused
    assert text_of(refused).startswith("context_dead: ") and "dead" in text_of(refused) and "restart_context" in text_of(refused)
    states = {c["id"]: c.get("state") for c in listed.structured_content["contexts"]}
    assert list(states.values()).count("dead") == 1 and list(states.values()).count("alive") == 1
    assert text_of(intact) == "yes\n"
    assert text_of(namespace) == "namespace alive\n"
    assert restarted.structured_content["state"] == "alive"
    assert text_of(fresh) == "fresh\n" and fresh.structured_content["execution_count"] == 1


def test_a_matplotlib_chart_is_image_content_with_its_chart_record(pykernel_bin, isolation):
    venv = os.environ.get("PYKERNEL_RICH_VENV", os.path.join(os.path.dirname(__file__), "..", "..", ".venv-rich"))
    assert os.path.exists(os.path.join(venv, "bin", "python")), f"{venv} is missing: run scripts/setup"
    code = "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.title('Bars')\nplt.show()"

    async def body(client):
        return await client.call_tool("run_python", {"code": code, "timeout": 120})
    result = session(pykernel_bin, body, "--isolation", isolation, "--venv", venv)
    assert not result.is_error, text_of(result)
    [image] = [item for item in result.content if item.type == "image"]
    assert image.mime_type == "image/png"
    [figure] = result.structured_content["results"]
    assert "image/png" not in figure["data"] and figure["data"]["text/plain"].startswith("<Figure size")
    assert figure["chart"]["type"] == "bar" and figure["chart"]["title"] == "Bars"
    assert [(e["label"], e["value"]) for e in figure["chart"]["elements"]] == [("a", 3), ("b", 5)]


def test_ipython_display_objects_show_their_source_not_a_placeholder(pykernel_bin, isolation):
    """IPython's `SVG`, `JSON`, `Math` and `Latex` give a `text/plain` that is only their default
    repr, `<IPython.core.display.SVG object>`, and that was the content the model read (the SVG
    and the JSON only in `structuredContent`). The SVG's source, the JSON or the LaTeX is given
    instead; an object whose only representation is that repr still shows it, and a plain
    text that says something is kept."""
    venv = os.environ.get("PYKERNEL_RICH_VENV", os.path.join(os.path.dirname(__file__), "..", "..", ".venv-rich"))
    assert os.path.exists(os.path.join(venv, "bin", "python")), f"{venv} is missing: run scripts/setup"
    code = ("from IPython.display import display, SVG, JSON, Math, Latex\n"
            "display(SVG('<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"4\" height=\"4\"><rect width=\"4\" height=\"4\"/></svg>'))\n"
            "display(JSON({'a': [1, 2]}))\n"
            "display(Math(r'\\frac{1}{2}'))\n"
            "display(Latex(r'$x^2$'))\n"
            "display({'text/plain': '<IPython.core.display.Foo object>', 'application/vnd.example+json': {'b': 1}}, raw=True)\n"
            "display({'text/plain': '<a labelled chart>', 'image/svg+xml': '<svg/>'}, raw=True)\n"
            "class Opaque:\n    pass\n"
            "Opaque()")

    async def body(client):
        return await client.call_tool("run_python", {"code": code, "timeout": 120})
    result = session(pykernel_bin, body, "--isolation", isolation, "--venv", venv)
    assert not result.is_error, text_of(result)
    svg, json_text, math, latex, other_json, labelled, opaque = [item.text for item in result.content]
    assert svg == '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>', svg
    assert json.loads(json_text) == {"a": [1, 2]}
    assert math == "$\\displaystyle \\frac{1}{2}$" and latex == "$x^2$"
    assert json.loads(other_json) == {"b": 1}
    assert labelled == "<a labelled chart>"
    assert opaque.startswith("<__main__.Opaque object at 0x") and opaque.endswith(">"), opaque


def test_mcp_with_a_venv_activates_it_for_commands_and_runs(pykernel_bin, isolation, tmp_path):
    """`pykernel mcp --venv`: run_command's python3 was the system's (`pip install` went there) while
    run_python's interpreter was the venv's; both now find the venv activated, as `pykernel serve`."""
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)], check=True)
    probe = "import os, sys; print(sys.prefix, os.environ.get('VIRTUAL_ENV'))"

    async def body(client):
        command = await client.call_tool("run_command", {"command": f"python3 -c {shlex.quote(probe)}"})
        run = await client.call_tool("run_python", {"code": f"import subprocess\ndone = subprocess.run(['python3', '-c', {probe!r}])"})
        return command, run
    command, run = session(pykernel_bin, body, "--isolation", isolation, "--venv", str(venv))
    assert not command.is_error and text_of(command).startswith(f"{venv} {venv}\n"), text_of(command)
    assert text_of(run) == f"{venv} {venv}\n"


def test_code_that_closes_every_descriptor_leaves_the_server_serving(pykernel_bin, isolation):
    """`os.closerange(3, ...)` spares the server's descriptors (its protocol, its capture)."""
    async def body(client):
        closed = await client.call_tool("run_python", {"code": "import os\nos.closerange(3, 1 << 16)\nprint('closed')", "timeout": 20})
        after = await client.call_tool("run_python", {"code": "print('still here')"})
        command = await client.call_tool("run_command", {"command": "echo shell"})
        return closed, after, command
    closed, after, command = session(pykernel_bin, body, "--isolation", isolation)
    assert text_of(closed) == "closed\n" and text_of(after) == "still here\n"
    assert not command.is_error and text_of(command).startswith("shell\n"), text_of(command)


def test_a_line_over_64_mib_is_answered_request_too_large(pykernel_bin):
    """As `pykernel serve` answers it (docs/protocol.md): -32600 with a null id and
    `data.max_line_bytes`; the server goes on. It went unanswered (a line in the log only), and
    the client waited for good."""
    max_line = 64 << 20
    server, send = initialized_raw_server(pykernel_bin, "namespace")
    server.stdin.write(b"#" * (max_line + 1000) + b"\n")
    send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    too_large = json.loads(server.stdout.readline())
    assert too_large == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32600, "message": f"The request is {max_line + 1000} bytes long, more than the {max_line} bytes a line may have.",
        "data": {"max_line_bytes": max_line}}}, too_large
    assert json.loads(server.stdout.readline()) == {"jsonrpc": "2.0", "id": 2, "result": {}}
    server.stdin.close()
    assert server.wait(timeout=30) == 0


def test_an_initialize_with_experimental_capabilities_as_objects_is_accepted(pykernel_bin):
    """MCP's schema makes each experimental capability an object (`{[key: string]: object}`); the
    SDK declares them strings, and a spec-valid `initialize` declaring one was refused with -32603
    "The data isn't in the correct format"."""
    capabilities = {"experimental": {"x": {}, "com.example/feature": {"enabled": True}, "s": "text"},
                    "roots": {"listChanged": True}, "sampling": {}, "elicitation": {}}
    lines = [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                 "protocolVersion": "2025-06-18", "capabilities": capabilities,
                 "clientInfo": {"name": "test", "version": "1"}}},
             HANDSHAKE[1],
             {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                 "name": "run_python", "arguments": {"code": "print('initialized')"}}}]
    server = raw_server(pykernel_bin, "namespace")
    stdout, _ = server.communicate(b"".join(json.dumps(line).encode() + b"\n" for line in lines), timeout=60)
    answers = {answer["id"]: answer for answer in map(json.loads, stdout.decode().splitlines())}
    assert answers[1]["result"]["serverInfo"]["name"] == "pykernel", answers[1]
    assert answers[2]["result"]["content"] == [{"type": "text", "text": "initialized\n"}], answers[2]
    assert server.returncode == 0


def test_a_client_gone_during_a_run_with_progress_is_logged_once(pykernel_bin):
    """A client gone (both pipes closed) while a run prints with a progressToken: every output
    chunk logged "could not send a progress notification" (thousands of lines in the 2 s the
    server gives the call; with its stderr unread, as here, the server blocked on the full pipe
    and never exited). The call now sends no more progress, and the log says so once."""
    server, send = initialized_raw_server(pykernel_bin, "namespace")
    try:
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_python", "_meta": {"progressToken": 1},
            "arguments": {"code": "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.001)"}}})
        assert json.loads(server.stdout.readline())["method"] == "notifications/progress"
        server.stdout.close()
        server.stdin.close()
        assert server.wait(timeout=30) == 0
        stderr = server.stderr.read().decode()
        assert stderr.count("could not send a progress notification") == 1, stderr[:2000]
    finally:
        server.kill()
        server.wait()


@pytest.mark.parametrize("client_gone", ["both-pipes", "reading-end-first"])
def test_answers_the_gone_client_cannot_read_are_not_waited_for(pykernel_bin, isolation, client_gone):
    """A client killed during a run (both pipes closed) left the run's answer unwritable, and the
    server waited for it as for a call still running: the 2 s of the end of input, then a
    shutdown's grace period, about 5 s in all although the run ended 0.5 s in (docs/mcp.md says
    4 s at most). A client that closed only its reading end, then its stdin, was waited for
    likewise, with its finished calls counted as unanswered. An answer that cannot be written
    counts as answered: the server ends once the runs have."""
    server, send = initialized_raw_server(pykernel_bin, isolation)
    try:
        if client_gone == "reading-end-first":
            server.stdout.close()
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "run_python", "arguments": {"code": "import time\ntime.sleep(0.5)"}}})
        send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "run_command", "arguments": {"command": "sleep 0.3"}}})
        if client_gone == "reading-end-first":
            time.sleep(1)  # both calls end, their answers unwritable
        else:
            server.stdout.close()
        server.stdin.close()
        server.stdin = server.stdout = None
        _, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr.decode()
        assert "still running after" not in stderr.decode(), stderr.decode()
        assert "unanswered" not in stderr.decode(), stderr.decode()
    finally:
        server.kill()
        server.wait()


def _running(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_shuts_the_server_down_with_what_it_started(pykernel_bin, isolation, signal_name, tmp_path):
    """MCP's stdio clients close the server's stdin, then send SIGTERM, then SIGKILL; Ctrl-C is
    SIGINT, a terminal that goes away SIGHUP. Each ended `pykernel mcp` at once, and a
    `run_command` process (in a process group of its own) ran on, orphaned. Now they shut it
    down as `pykernel serve`: the run is answered `interrupted` (a process context's worker
    ended), a queued run -32005, the command killed and answered, exit status 0."""
    import signal
    fifo = tmp_path / "command-pid"
    os.mkfifo(fifo)
    server, send = initialized_raw_server(pykernel_bin, isolation)
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "run_command", "arguments": {"command": f"echo $$ > {fifo}; exec sleep 300"}}})
    # The run prints once the command runs (it reads the command's pid from the FIFO).
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_python", "_meta": {"progressToken": 3}, "arguments": {
            "code": f"import os, time\nprint(open({str(fifo)!r}).read().strip(), os.getpid(), flush=True)\ntime.sleep(300)"}}})
    send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "print('queued')"}}})
    progress = json.loads(server.stdout.readline())
    command, runner = map(int, progress["params"]["message"].split())
    try:
        assert _running(command)
        server.send_signal(getattr(signal, signal_name))
        stdout, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr.decode()
        answers = {answer["id"]: answer for answer in map(json.loads, stdout.decode().splitlines()) if "id" in answer}
        assert answers[3]["result"]["structuredContent"]["status"] == "interrupted", answers
        assert answers[4]["error"]["code"] == -32005, answers
        assert answers[2]["result"]["structuredContent"]["exit_code"] == 128 + signal.SIGKILL, answers
        assert not _running(command), "the command outlived the server"
        assert runner == server.pid or not _running(runner), "the worker outlived the server"
    finally:
        for pid in (command, runner):
            if pid != server.pid and _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("stubborn", [
    "while True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass",
    "sum(range(10**12))",
], ids=["catches-interrupts", "native-code"])
def test_a_run_still_going_after_the_end_of_input_is_stopped_with_its_processes(pykernel_bin, isolation, stubborn):
    """A client closes stdin while a run that does not stop on its interrupt (it catches every
    KeyboardInterrupt, or sits in C code) has a subprocess running: the server exited 2 s later
    and the subprocess ran on, adopted by init. The calls still running 2 s after the end of
    input are now stopped as on SIGTERM: answered `interrupted`, the run's processes ended."""
    import signal
    server, send = initialized_raw_server(pykernel_bin, isolation)
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "run_python", "_meta": {"progressToken": 2}, "arguments": {
            "code": "import subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\n"
                    f"print(child.pid, flush=True)\n{stubborn}"}}})
    child = int(json.loads(server.stdout.readline())["params"]["message"])
    try:
        assert _running(child)
        started = time.monotonic()
        server.stdin.close()
        server.stdin = None  # closed: `communicate` only reads
        stdout, stderr = server.communicate(timeout=30)
        assert server.returncode == 0, stderr.decode()
        assert time.monotonic() - started < 15
        answers = {answer["id"]: answer for answer in map(json.loads, stdout.decode().splitlines()) if "id" in answer}
        assert answers[2]["result"]["structuredContent"]["status"] == "interrupted", answers
        assert "stopping them as on SIGTERM" in stderr.decode()
        deadline = time.monotonic() + 2  # init reaps what the server's kill left a zombie
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child), "the run's subprocess outlived the server"
    finally:
        if _running(child):
            os.kill(child, signal.SIGKILL)


def test_a_malformed_cancellation_is_logged_as_the_clients_mistake_in_one_line(pykernel_bin):
    """A `notifications/cancelled` without params, or with a `requestId` that is not an id, was
    logged `pykernel[error]: Error handling notification error=DecodingError.dataCorrupted: ...`
    (Swift's decoder): a server error in words no client author reads. It is a warning naming
    the notification and what is wrong; nothing is answered and the server goes on."""
    server, send = initialized_raw_server(pykernel_bin, "namespace")
    send({"jsonrpc": "2.0", "method": "notifications/cancelled"})
    send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": {"a": 1}}})
    send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5, "reason": 7}})
    send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    assert json.loads(server.stdout.readline()) == {"jsonrpc": "2.0", "id": 2, "result": {}}
    server.stdin.close()
    server.stdin = None
    stdout, stderr = server.communicate(timeout=30)
    assert server.returncode == 0 and stdout == b""
    lines = stderr.decode().splitlines()
    assert not [line for line in lines if "[error]" in line], lines
    assert 'pykernel[warning]: ignored a notification: notifications/cancelled: "params" is required' in stderr.decode(), lines
    assert 'notifications/cancelled: "params.requestId" must be a string or an integer of at most 64 bits, got object' in stderr.decode()
    assert 'notifications/cancelled: "params.reason" must be a string, got number' in stderr.decode()


def test_calls_about_contexts_during_a_shutdown_are_refused_shutting_down(pykernel_bin):
    """docs/mcp.md: once a signal has begun the shutdown, create_context, delete_context,
    restart_context and interrupt are -32005 too, for either kind of context (create_context of a
    namespace context made one, and the others said the context was not found)."""
    import signal
    server, send = initialized_raw_server(pykernel_bin, "namespace")
    # A run that ignores the interrupt holds the server up for the grace period.
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "run_python", "_meta": {"progressToken": 2}, "arguments": {
            "code": "import time\nprint('in', flush=True)\nwhile True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass"}}})
    send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "run_python", "arguments": {"code": "print('queued')"}}})
    assert json.loads(server.stdout.readline())["method"] == "notifications/progress"
    server.send_signal(signal.SIGTERM)
    answers = {}
    while 3 not in answers:  # the queued run refused: the shutdown has begun
        message = json.loads(server.stdout.readline())
        answers[message.get("id")] = message
    assert answers[3]["error"]["code"] == -32005, answers
    calls = [("create_context", {}), ("create_context", {"isolation": "process"}), ("delete_context", {"id": "default"}),
             ("restart_context", {"id": "default"}), ("interrupt", {"context": "default"})]
    for offset, (name, arguments) in enumerate(calls):
        send({"jsonrpc": "2.0", "id": 10 + offset, "method": "tools/call", "params": {"name": name, "arguments": arguments}})
    stdout, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    answers.update({answer["id"]: answer for answer in map(json.loads, stdout.decode().splitlines()) if "id" in answer})
    for offset, (name, arguments) in enumerate(calls):
        assert answers[10 + offset].get("error", {}).get("code") == -32005, (name, arguments, answers[10 + offset])
    assert answers[2]["result"]["structuredContent"]["status"] == "interrupted"


def test_user_code_has_no_standard_input(pykernel_bin, isolation):
    """docs/mcp.md said that user code reads /dev/null as stdin: Python's `sys.stdin` raises
    EOFError at once (as `pykernel serve` without `allow_stdin`); descriptor 0 is /dev/null, for
    `os.read`, the run's subprocesses and `run_command`."""
    code = ("import os, subprocess, sys\n"
            "for read in (sys.stdin.read, input):\n"
            "    try:\n"
            "        read()\n"
            "    except EOFError as error:\n"
            "        print('EOFError:', str(error).split(':')[0])\n"
            "print(repr(os.read(0, 10)), repr(subprocess.run(['cat'], capture_output=True).stdout), os.readlink('/proc/self/fd/0'))")

    async def body(client):
        return (await client.call_tool("run_python", {"code": code}),
                await client.call_tool("run_command", {"command": "cat; echo end"}))
    run, command = session(pykernel_bin, body, "--isolation", isolation)
    assert text_of(run) == ("EOFError: input() is not supported here\nEOFError: input() is not supported here\n"
                            "b'' b'' /dev/null\n"), text_of(run)
    assert command.structured_content["stdout"] == "end\n"


def test_a_gif_or_other_image_is_image_content(pykernel_bin):
    """MCP's image content takes any image type: a bundle with only `image/gif` was its base64 as
    text. An image type whose data is not base64 stays text, and SVG is text."""
    code = ("import base64\n"
            "GIF = base64.b64decode('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==')\n"
            "display({'image/gif': GIF}, raw=True)\n"
            "display({'image/webp': GIF, 'text/plain': '<an image>'}, raw=True)\n"
            "display({'image/gif': 'not base64!'}, raw=True)\n"
            "display({'image/svg+xml': '<svg/>'}, raw=True)\n")

    async def body(client):
        return await client.call_tool("run_python", {"code": code})
    result = session(pykernel_bin, body)
    gif = "R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
    assert [(item.type, getattr(item, "mime_type", None), getattr(item, "data", None) or item.text)
            for item in result.content] == [
        ("image", "image/gif", gif), ("image", "image/webp", gif), ("text", None, "not base64!"), ("text", None, "<svg/>")]
