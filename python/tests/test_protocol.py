"""``pykernel serve`` at the byte level: malformed input, notifications, duplicate ids, the
purity of stdout, end of input, shutdown and SIGTERM, logging (see docs/protocol.md)."""

import base64
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from pykernel_raw import RawServer, is_response

MAX_LINE = 64 << 20


def error_of(reply, code):
    assert "error" in reply, f"expected error {code}, got {reply}"
    assert reply["error"]["code"] == code, reply
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    return reply["error"]


def assert_still_serving(server):
    info = server.result("kernel.info")
    assert info["name"] == "pykernel"
    assert server.bad_lines == [], server.bad_lines[:3]


def assert_only(server, start, expected, settle=0.3):
    """After ``settle`` s, the messages since index ``start`` are exactly ``expected`` (a count)."""
    time.sleep(settle)
    got = server.messages_since(start)
    assert len(got) == expected, got


# ---------------------------------------------------------------- malformed lines


def test_a_50_mb_request_is_answered_normally(raw):
    code = "#" * (50 * 1000 * 1000) + "\nprint('after 50 MB of comments')\n"
    id = raw.request("code.run", {"code": code})
    reply = raw.response(id, timeout=90)
    assert reply["result"]["status"] == "ok", reply
    assert reply["result"]["stdout"] == "after 50 MB of comments\n"
    assert_still_serving(raw)


def test_50_mb_of_garbage_is_a_parse_error(raw):
    start = raw.count()
    raw.send(b"x" * (50 * 1000 * 1000) + b"\n")
    reply = raw.wait_for(is_response, timeout=60, what="a parse error")
    error = error_of(reply, -32700)
    assert reply["id"] is None
    assert error["data"]["offset"] == 0
    assert_only(raw, start, 1, settle=0.1)
    assert_still_serving(raw)


def test_a_line_over_64_mib_is_rejected_as_too_large(raw):
    raw.send(b"\xff" * (MAX_LINE + 1000) + b"\n")
    reply = raw.wait_for(is_response, timeout=60, what="the too-large error")
    error = error_of(reply, -32600)
    assert reply["id"] is None
    assert error["data"]["max_line_bytes"] == MAX_LINE
    assert str(MAX_LINE) in error["message"]
    assert_still_serving(raw)
    assert b"rejected a line" in raw.stderr  # a warning on stderr, never on stdout


@pytest.mark.parametrize("line, code, message_part", [
    (b"\x00\xff\xfe\x80\x81binary\x01\x02", -32700, "Parse error"),
    (b"{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": ", -32700, "Parse error"),
    (b"{'jsonrpc': '2.0'}", -32700, "Parse error"),
    (b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"kernel.info\"}]", -32600, "batch"),
    (b"[]", -32600, "batch"),
    (b"42", -32600, "number"),
    (b"\"kernel.info\"", -32600, "string"),
    (b"null", -32600, "null"),
    (b"true", -32600, "boolean"),
    (b'{"jsonrpc":"2.0","id":1,"method":"code.run","params":{"code":"1","x":' + b"[" * 513 + b"]" * 513 + b"}}",
     -32700, "nested deeper than 512"),
], ids=["binary", "truncated", "single-quotes", "array", "empty-array", "number", "string", "null", "true", "too-deep"])
def test_malformed_line_gets_one_error_with_null_id(raw, line, code, message_part):
    start = raw.count()
    raw.send(line + b"\n")
    reply = raw.wait_for(is_response, what=f"the answer to {line[:20]!r}")
    error = error_of(reply, code)
    assert reply["id"] is None
    assert message_part.lower() in error["message"].lower()
    assert_only(raw, start, 1, settle=0.1)
    assert_still_serving(raw)


@pytest.mark.parametrize("line", [b"", b"   ", b"\t \r", b"\r"], ids=["empty", "spaces", "tabs-cr", "cr"])
def test_blank_lines_are_ignored(raw, line):
    start = raw.count()
    raw.send(line + b"\n")
    id = raw.request("kernel.info")
    reply = raw.response(id)
    assert "result" in reply
    assert_only(raw, start, 1, settle=0.1)


@pytest.mark.parametrize("message, code, message_part", [
    ({"id": 1, "method": "kernel.info"}, -32600, "jsonrpc"),
    ({"jsonrpc": "1.0", "id": 1, "method": "kernel.info"}, -32600, "2.0"),
    ({"jsonrpc": "2.0", "id": 1}, -32600, "method"),
    ({"jsonrpc": "2.0", "id": 1, "method": 5}, -32600, "method"),
    ({"jsonrpc": "2.0", "id": 1, "method": "kernel.info", "params": 5}, -32600, "params"),
], ids=["no-jsonrpc", "jsonrpc-1.0", "no-method", "method-number", "params-number"])
def test_invalid_request_objects_echo_their_id(raw, message, code, message_part):
    raw.send(message)
    reply = raw.response(1)
    assert message_part in error_of(reply, code)["message"]
    assert_still_serving(raw)


def test_an_id_that_is_not_a_string_number_or_null_is_invalid(raw):
    raw.send({"jsonrpc": "2.0", "id": True, "method": "kernel.info"})
    reply = raw.wait_for(is_response)
    assert reply["id"] is None
    assert "id" in error_of(reply, -32600)["message"]


def test_string_and_null_ids_are_echoed(raw):
    assert raw.response(raw.request("kernel.info", id="abc"))["id"] == "abc"
    raw.send({"jsonrpc": "2.0", "id": None, "method": "context.list"})
    reply = raw.wait_for(is_response)
    assert reply["id"] is None and reply["result"]["contexts"][0]["id"] == "default"


def test_a_repeated_member_is_read_with_its_last_value(raw):
    """protocol.md: an object that repeats a member name is read with its last value."""
    raw.send(b'{"jsonrpc":"2.0","id":1,"method":"code.run","id":2,"params":{"code":"print(5)","code":"print(6)"}}\n')
    reply = raw.wait_for(is_response)
    assert (reply["id"], reply["result"]["stdout"]) == (2, "6\n"), reply


def test_a_lone_surrogate_in_a_string_id_is_read_as_the_replacement_character(raw):
    """As protocol.md says: `"\\ud800"` is read as U+FFFD, in an id too (echoed so, and one id
    with another that differs only in its lone surrogates)."""
    raw.send(b'{"jsonrpc":"2.0","id":"a\\ud800","method":"kernel.info"}\n')
    assert "result" in raw.response("a\ufffd")
    raw.send(b'{"jsonrpc":"2.0","id":"s\\ud800","method":"code.run","params":{"code":"import time; time.sleep(0.3)"}}\n')
    raw.send(b'{"jsonrpc":"2.0","id":"s\\udbff","method":"kernel.info"}\n')
    refused = raw.wait_for(lambda m: m.get("id") == "s\ufffd" and "error" in m)
    assert refused["error"]["code"] == -32600 and "still in progress" in refused["error"]["message"], refused
    assert raw.response("s\ufffd", timeout=30)


def test_number_ids_are_echoed_as_written_and_compared_by_value(pykernel_bin):
    """Numbers that are not 64-bit integers were echoed as a Double (`1.2345678901234568e+29`,
    `100.0` for `1E2`), and two big ids in flight collided; they keep their text, and ids compare
    by exact value (`7` and `7.0` are one id)."""
    big, bigger = "123456789012345678901234567890", "123456789012345678901234567891"
    sleep = '"method":"code.run","params":{"code":"import time\\ntime.sleep(0.5)"}'
    ids = ["9223372036854775808", "-9223372036854775809", "1E2", "0.1e1", "1.00000000000000000001", "-0", "1e400"]
    lines = [f'{{"jsonrpc":"2.0","id":{id},"method":"kernel.info"}}' for id in ids]
    lines += [f'{{"jsonrpc":"2.0","id":{big},{sleep}}}', f'{{"jsonrpc":"2.0","id":{bigger},"method":"kernel.info"}}',
              f'{{"jsonrpc":"2.0","id":7,{sleep}}}', '{"jsonrpc":"2.0","id":7.0,"method":"kernel.info"}']
    done = subprocess.run([pykernel_bin, "serve"], input="\n".join(lines).encode() + b"\n", capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    replies = done.stdout.decode().splitlines()

    def reply_to(id_text):
        prefix = f'{{"jsonrpc":"2.0","id":{id_text},'
        return [json.loads(line) for line in replies if line.startswith(prefix)]
    for id in ids + [bigger]:
        [reply] = reply_to(id)
        assert reply["result"]["name"] == "pykernel", (id, reply)
    [run] = reply_to(big)
    assert run["result"]["status"] == "ok"
    [duplicate] = reply_to("7.0")
    assert error_of(duplicate, -32600)["data"] == {"id": 7.0}
    assert '"data":{"id":7.0}' in next(line for line in replies if line.startswith('{"jsonrpc":"2.0","id":7.0,'))
    [run] = reply_to("7")
    assert run["result"]["status"] == "ok"


def test_a_number_past_the_range_of_a_double_is_read_and_the_request_answered_under_its_id(raw):
    """`1e400` anywhere in a request made the whole line a parse error (`id: null`): it is
    JSON, read as an infinity, and the request is checked as usual under its own id."""
    def answer(id, params, method="code.run"):
        raw.send(f'{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}'.encode() + b"\n")
        return raw.response(id)

    # A timeout that long is none.
    assert answer(5, '{"code":"1","timeout":1e400}')["result"]["status"] == "ok"
    assert answer(6, '{"command":"echo hi","timeout":1e309}', "process.exec")["result"]["stdout"] == "hi\n"
    assert error_of(answer(7, '{"code":"1","timeout":-1e400}'), -32602)["data"]["field"] == "timeout"
    assert error_of(answer(8, '{"code":"1","max_output_bytes":1e400}'), -32602)["data"]["field"] == "max_output_bytes"
    unknown = error_of(answer(9, '{"code":"1","extra":1e999}'), -32602)["data"]
    assert unknown == {"reason": "unknown_parameter", "field": "extra"}
    # A member of the request that is none of the envelope's is read and dropped.
    raw.send(b'{"jsonrpc":"2.0","id":10,"method":"kernel.info","extra":[-1e999]}\n')
    assert raw.response(10)["result"]["name"] == "pykernel"
    assert_still_serving(raw)


def test_an_integer_param_out_of_its_range_is_refused_with_the_range_it_takes(raw):
    """`max_output_bytes: 1e30` said "an integer from -9223372036854775808 to ...", although
    negatives are refused; each integer param names the range it takes."""
    def message(method, params, field):
        error = error_of(raw.call(method, params), -32602)
        assert error["data"] == {"reason": "invalid_argument", "field": field}, error
        assert "-9223372036854775808" not in error["message"], error
        return error["message"]

    for value in (1e30, -1, -1e30):
        assert "must be an integer from 0 to 9223372036854775807, got" in message("code.run", {"code": "1", "max_output_bytes": value}, "max_output_bytes")
    assert "from 1 to 10000, got 1e+30" in message("pty.create", {"command": "true", "cols": 1e30}, "cols")
    assert "from 1 to 64, got" in message("pty.kill", {"id": "nope", "signal": 1e30}, "signal")


def test_code_input_names_a_run_whose_id_is_beyond_64_bits(raw):
    big = 123456789012345678901234567890
    raw.request("code.run", {"code": "print(input() * 2)", "allow_stdin": True}, id=big)
    request = raw.wait_for(lambda m: m.get("method") == "code.input_request")
    assert request["params"]["request_id"] == big
    assert raw.result("code.input", {"request_id": big, "value": "ab"}) == {}
    assert raw.response(big)["result"]["stdout"] == "abab\n"


# ---------------------------------------------------------------- notifications and ids


def test_a_request_without_id_is_executed_without_response(raw):
    start = raw.count()
    raw.notify("code.run", {"code": "notified = 41 + 1\nprint('not streamed')"})
    raw.notify("no.such.method")
    raw.notify("context.delete", {"id": "default"})
    reply = raw.call("code.run", {"code": "print(notified)"})
    assert reply["result"]["stdout"] == "42\n", "the notification's code.run did not run first"
    # Only the later run's notification and response: nothing about the notifications.
    got = raw.messages_since(start)
    assert [m.get("method", "response") for m in got] == ["code.output", "response"], got


def test_duplicate_id_in_flight_is_rejected_while_the_first_runs(raw, tmp_path):
    # The first run waits for a file the test makes only once the duplicate is answered: a
    # duplicate held until the first run's end would never come (no clock: the host may be slow).
    gate = str(tmp_path / "gate")
    code = f"import os, time\nwhile not os.path.exists({gate!r}): time.sleep(0.01)\nprint('first')"
    raw.request("code.run", {"code": code}, id=7)
    raw.request("kernel.info", id=7)
    try:
        duplicate = raw.response(7)
        error = error_of(duplicate, -32600)
        assert error["data"] == {"id": 7}
    finally:
        open(gate, "w").close()
    first = raw.response(7)
    assert first["result"]["stdout"] == "first\n"


def test_an_id_may_be_reused_once_its_response_has_arrived(raw):
    """Only ids *in flight* are duplicates: a client that reuses an id right after reading its
    response must not get -32600. (The server writes a deferred response before it forgets the
    id, a race; two CPU burners make the scheduling gap show up reliably.)"""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        failures = []
        for attempt in range(1000):
            raw.request("code.run", {"code": "pass"}, id="again")
            reply = raw.response("again")
            if "result" not in reply:
                failures.append((attempt, reply))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert failures == [], f"{len(failures)} of 1000 reuses refused; first: {failures[0]}"


# ---------------------------------------------------------------- invalid params


@pytest.mark.parametrize("method, params, field", [
    ("code.run", {}, "code"),
    ("code.run", None, "code"),
    ("code.run", {"code": 1}, "code"),
    ("code.run", {"code": "1", "context": 5}, "context"),
    ("code.run", {"code": "1", "env": "A=1"}, "env"),
    ("code.run", {"code": "1", "env": {"A": 1}}, "env"),
    ("code.run", {"code": "1", "timeout": "5"}, "timeout"),
    ("code.run", {"code": "1", "timeout": -1}, "timeout"),
    ("code.run", {"code": "1", "max_output_bytes": 1.5}, "max_output_bytes"),
    ("code.run", {"code": "1", "max_output_bytes": -1}, "max_output_bytes"),
    ("context.create", {"cwd": 5}, "cwd"),
    ("context.create", {"language": "javascript"}, "language"),
    ("context.delete", {}, "id"),
    ("context.delete", {"id": 5}, "id"),
    ("code.interrupt", {}, "context"),
], ids=lambda v: json.dumps(v) if not isinstance(v, str) else v)
def test_missing_or_mistyped_params(raw, method, params, field):
    error = error_of(raw.call(method, params), -32602)
    assert error["data"] == {"reason": "invalid_argument", "field": field}
    assert field in error["message"]
    assert_still_serving(raw)


@pytest.mark.parametrize("method, params, field", [
    ("code.run", {"code": "x = 1", "context_id": "default"}, "context_id"),
    ("code.run", {"code": "x = 1", "timeout_ms": 100}, "timeout_ms"),
    ("context.create", {"cwd": "/tmp", "name": "mine"}, "name"),
    ("kernel.info", {"verbose": True}, "verbose"),
    ("code.input", {"request_id": 1, "value": "x", "echo": False}, "echo"),
    ("process.exec", {"command": "touch made", "timeout_ms": 5}, "timeout_ms"),
    ("session.create", {"id": "s", "shell": "zsh"}, "shell"),
], ids=lambda v: json.dumps(v) if not isinstance(v, str) else v)
def test_unknown_params_are_refused_and_named(raw, method, params, field):
    """A misspelt or made-up param is an error naming it, never silently ignored; nothing ran."""
    error = error_of(raw.call(method, params), -32602)
    assert error["data"] == {"reason": "unknown_parameter", "field": field}
    assert error["message"].startswith(f"params.{field} is not a parameter of {method} (")
    result = raw.call("code.run", {"code": "print(globals().get('x'))"})["result"]
    assert result["stdout"] == "None\n"
    assert_still_serving(raw)


@pytest.mark.parametrize("method, params", [
    ("code.run", {"code": "x = 1", "context_id": None}),
    ("code.run", {"code": "x = 1", "timeout": None, "timeout_ms": None}),
    ("context.list", {"cursor": None}),
    ("kernel.info", {"verbose": None}),
    ("context.create", {"name": None}),
    ("process.exec", {"command": "true", "timeout_ms": None}),
    ("session.list", {"cursor": None}),
], ids=lambda v: json.dumps(v) if not isinstance(v, str) else v)
def test_an_unknown_param_set_to_null_counts_as_absent(raw, method, params):
    """docs/protocol.md: "Members set to `null` inside `params` count as absent" -- an unknown one
    too: it asks for nothing, so the request is answered as without it (it was refused as
    `unknown_parameter`)."""
    reply = raw.call(method, params)
    assert "result" in reply, reply
    assert_still_serving(raw)


def test_params_as_array_are_invalid(raw):
    error = error_of(raw.call("code.run", ["print(1)"]), -32602)
    assert error["data"] == {"reason": "invalid_argument", "field": "params"}


@pytest.mark.parametrize("cwd, problem", [("/no/such/dir", "does not exist"), ("/etc/hostname", "not a directory")])
def test_bad_cwd_is_invalid_params(raw, cwd, problem):
    error = error_of(raw.call("context.create", {"cwd": cwd}), -32602)
    assert problem in error["message"]
    assert error["data"] == {"reason": "invalid_cwd", "field": "cwd"}


def test_bad_environment_name_is_invalid_params(raw):
    error = error_of(raw.call("code.run", {"code": "1", "env": {"A=B": "1"}}), -32602)
    assert error["data"] == {"reason": "invalid_argument", "field": "env"}


def test_unknown_method(raw):
    error = error_of(raw.call("code.execute", {"code": "1"}), -32601)
    assert error["data"] == {"method": "code.execute"}


@pytest.mark.parametrize("method, params", [
    ("code.run", {"code": "1", "context": "nope"}),
    ("context.delete", {"id": "nope"}),
    ("code.interrupt", {"context": "nope"}),
])
def test_unknown_context(raw, method, params):
    error = error_of(raw.call(method, params), -32001)
    assert error["data"]["reason"] == "context_not_found"
    assert "nope" in error["message"]


def test_deleting_the_default_context(raw):
    error = error_of(raw.call("context.delete", {"id": "default"}), -32002)
    assert error["data"]["reason"] == "default_context_undeletable"


def documented_error_messages():
    """The message docs/protocol.md's Application codes example shows for each code."""
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "docs", "protocol.md"),
              encoding="utf-8") as file:
        text = file.read()
    block = text[text.index("### Application codes"):]
    block = block[block.index("```"):]
    block = block[:block.index("```", 3)]
    return {error["code"]: error["message"] for error in
            (json.loads(line[4:])["error"] for line in block.splitlines() if line.startswith("<-- "))}


UUID_TEXT = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_each_error_code_has_one_message_whatever_answers_it(pykernel_bin, isolation):
    """One code, one wording, the one the docs show: -32001 of every method (context.restart said
    "No context has the id nope."), -32002 (a process `default` said "The default context cannot
    be deleted."), -32004, and -32005 of a run queued at shutdown and of one sent after it (the
    latter said "... and accepts no more runs.")."""
    documented = documented_error_messages()
    server = RawServer(pykernel_bin, ["--isolation", isolation, "--pool-size", "1"])
    try:
        said = {}  # code -> {message: what answered it}
        for method, params in [("code.run", {"code": "1", "context": "nope"}), ("context.delete", {"id": "nope"}),
                               ("context.restart", {"id": "nope"}), ("code.interrupt", {"context": "nope"})]:
            error = error_of(server.call(method, params), -32001)
            said.setdefault(-32001, {})[re.sub(r"'nope'", "'ID'", error["message"])] = method
        said[-32002] = {error_of(server.call("context.delete", {"id": "default"}), -32002)["message"]: "context.delete"}
        # A run queued in a context deleted while another runs there.
        context = server.result("context.create", {"isolation": isolation})["id"]
        first = server.request("code.run", {"code": "print('in', flush=True)\nimport time\ntime.sleep(30)", "context": context})
        server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == first, what="the first run's output")
        queued = server.request("code.run", {"code": "1", "context": context})
        server.result("context.delete", {"id": context})
        error = error_of(server.response(queued), -32004)
        said[-32004] = {error["message"].replace(context, "ID"): "a queued run"}
        assert server.response(first)["result"]["status"] == "interrupted"
        # Runs not started at shutdown: one queued then, one sent after it.
        first = server.request("code.run", {"code": "print('in', flush=True)\nimport time\ntime.sleep(30)"})
        server.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == first, what="the run's output")
        queued = server.request("code.run", {"code": "1"})
        shutdown = server.request("shutdown")
        late = server.request("code.run", {"code": "1"})
        said[-32005] = {error_of(server.response(queued), -32005)["message"]: "a queued run",
                        error_of(server.response(late), -32005)["message"]: "a run sent after shutdown"}
        assert server.response(shutdown)["result"] == {}
    finally:
        server.kill()
    for code, messages in said.items():
        assert len(messages) == 1, f"{code} has several messages: {messages}"
        assert list(messages) == [re.sub(UUID_TEXT, "ID", documented[code])], (code, documented[code])


def test_every_malformed_input_in_one_session_then_still_serving(raw):
    """All the bad inputs of issue 3 in a row; the server answers each and keeps serving."""
    raw.send(b"\x00\xff garbage\n[1,2]\n3\n\"s\"\n\n   \n")
    raw.notify("code.run", {"code": "survived = True"})
    raw.request("code.run", {"code": "import time; time.sleep(0.5)"}, id="dup")
    raw.request("kernel.info", id="dup")
    for method, params in [("code.run", {}), ("code.run", {"code": "1", "timeout": -1}),
                           ("context.create", {"language": "ruby"}), ("context.create", {"cwd": "/nope"}),
                           ("nope", None), ("code.run", {"code": "1", "context": "nope"}),
                           ("context.delete", {"id": "default"})]:
        raw.request(method, params)
    raw.send(b"y" * (MAX_LINE + 1) + b"\n")
    codes = []
    for _ in range(4 + 1 + 7 + 1):
        codes.append(raw.wait_for(lambda m: is_response(m) and "error" in m)["error"]["code"])
    assert sorted(codes) == sorted([-32700, -32600, -32600, -32600, -32600, -32602, -32602, -32602, -32602,
                                    -32601, -32001, -32002, -32600])
    assert raw.response("dup")["result"]["status"] == "ok"
    assert raw.result("code.run", {"code": "print(survived)"})["stdout"] == "True\n"
    assert_still_serving(raw)


# ---------------------------------------------------------------- ordering and concurrency


def test_runs_of_one_context_queue_in_arrival_order(raw):
    raw.request("code.run", {"code": "order = []"})
    ids = [raw.request("code.run", {"code": f"import time; time.sleep(0.05); order.append({n})"}) for n in range(5)]
    counts = [raw.response(id)["result"]["execution_count"] for id in ids]
    assert counts == sorted(counts)
    assert raw.result("code.run", {"code": "print(order)"})["stdout"] == "[0, 1, 2, 3, 4]\n"


def test_answers_of_pipelined_runs_arrive_while_a_later_run_goes_on(raw):
    """Runs written together may have their answers held for the next ones (one write for
    many), but a long run does not hold back the answers of the quick ones before it: each
    arrives while it runs."""
    contexts = [raw.result("context.create", {})["id"] for _ in range(3)]
    lines, quick = [], []
    for step in range(30):
        request = raw.next_id()
        quick.append(request)
        lines.append({"jsonrpc": "2.0", "id": request, "method": "code.run",
                      "params": {"context": contexts[step % 3], "code": "x = sum(range(1000))"}})
    slow = raw.next_id()
    lines.append({"jsonrpc": "2.0", "id": slow, "method": "code.run",
                  "params": {"context": contexts[0], "code": "import time\ntime.sleep(3)"}})
    raw.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    for request in quick:
        assert raw.response(request, timeout=2.5)["result"]["status"] == "ok"
    assert not any(m.get("id") == slow for m in raw.messages_since(0)), "the sleep ended before the quick answers came"
    assert raw.response(slow, timeout=10)["result"]["status"] == "ok"


def test_invalid_utf8_output_is_capped_as_its_text(raw):
    """Bytes that are not UTF-8 were cut at max_output_bytes as bytes and decoded afterwards: each
    kept byte became U+FFFD, 3 bytes, so the result kept 3 times the limit, and the omitted count
    was in bytes as written. Output is text as it arrives: the limit and the counts are its bytes."""
    reply = raw.result("code.run", {"code": "import os\nos.write(1, b'\\xff' * 3000)\nos.write(1, b'a\\xe9' * 500)",
                                    "max_output_bytes": 1000})
    text = "\ufffd" * 3000 + "a\ufffd" * 500
    kept = reply["stdout"]
    assert len(kept.encode()) <= 1000 and reply["stdout_truncated"] is True
    assert len(kept.encode()) + reply["stdout_omitted_bytes"] == len(text.encode())
    assert text.startswith(kept[:100]) and text.endswith(kept[-100:])


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_cut_stream_says_where_its_head_ends(pykernel_bin, isolation):
    """The joined head and tail did not tell where the cut is when half the limit falls inside a
    character (the head is then shorter): a cut stream's `<stream>_head_bytes` says it, in
    either kind of context (a process context's worker answers with it); a stream not cut has none."""
    from pykernel_raw import RawServer

    server = RawServer(pykernel_bin, ["--isolation", isolation])
    try:
        reply = server.result("code.run", {"code": "import sys\nprint('a' + 'é' * 600 + 'Z' * 2000, end='')\n"
                                                   "sys.stderr.write('é' * 10)", "max_output_bytes": 1000})
        assert reply["stdout"] == "a" + "é" * 249 + "Z" * 500
        assert reply["stdout_head_bytes"] == 499 and reply["stdout_omitted_bytes"] == 2202
        assert reply["stderr"] == "é" * 10 and "stderr_head_bytes" not in reply
        whole = server.result("code.run", {"code": "print('short')"})
        assert "stdout_head_bytes" not in whole and "stderr_head_bytes" not in whole
    finally:
        server.kill()


def test_notifications_precede_their_response_and_carry_every_byte(raw):
    id = raw.request("code.run", {"code": "import sys\nfor i in range(2000):\n    print('line', i)\n"
                                          "sys.stderr.write('done');", "max_output_bytes": 100})
    reply = raw.response(id)
    notes = raw.notifications(id)
    assert all(n["method"] == "code.output" for n in notes)
    stdout = "".join(n["params"]["text"] for n in notes if n["params"]["stream"] == "stdout")
    assert stdout == "".join(f"line {i}\n" for i in range(2000))
    assert "".join(n["params"]["text"] for n in notes if n["params"]["stream"] == "stderr") == "done"
    assert reply["result"]["stdout_truncated"] is True and len(reply["result"]["stdout"]) == 100
    # The result keeps the head and the tail and counts the bytes cut between them.
    assert reply["result"]["stdout"] == stdout[:50] + stdout[-50:]
    assert reply["result"]["stdout_omitted_bytes"] == len(stdout) - 100
    assert reply["result"]["stderr_omitted_bytes"] == 0
    arrival = raw.arrival(reply)
    assert all(raw.arrival(n) <= arrival for n in notes)


def test_control_requests_answer_at_once_during_a_run(raw):
    id = raw.request("code.run", {"code": "import time\nprint('started', flush=True)\ntime.sleep(2)"})
    raw.wait_for(lambda m: m.get("method") == "code.output")
    for method, params in [("context.list", None), ("kernel.info", None), ("context.create", None)]:
        sent = time.monotonic()
        reply = raw.call(method, params)
        assert "result" in reply
        assert raw.arrival(reply) - sent < 0.1, method
    assert raw.response(id)["result"]["status"] == "ok"


def test_a_run_whose_timeout_passed_before_its_code_starts_is_stopped_every_time(raw):
    """A timeout of 10^-18 s (or less, which counts as that), or one that has passed by the time
    the code would start, is answered `timeout` at once: short code often ended `ok` first (the
    watchdog stopped only what still ran when it woke up). Nothing of the code runs."""
    for timeout in (1e-18, 1e-30, 1e-12):
        for code in ("pass", "x = 1", "import time; time.sleep(0.01)"):
            for _ in range(5):
                result = raw.result("code.run", {"code": code, "timeout": timeout})
                assert result["status"] == "timeout", (code, timeout, result)
                assert result["error"]["name"] == "TimeoutError", result
                assert result["stdout"] == result["stderr"] == ""
    assert raw.result("code.run", {"code": "print('x' in globals())"})["stdout"] == "False\n"


def test_stopped_runs_report_timeout_and_interrupted(raw):
    id = raw.request("code.run", {"code": "import time\nprint('a', flush=True)\ntime.sleep(30)", "timeout": 0.5})
    result = raw.response(id)["result"]
    assert result["status"] == "timeout"
    assert result["error"]["name"] == "TimeoutError"
    assert result["error"]["value"] == "execution exceeded the 0.5 s timeout"
    assert result["stdout"] == "a\n"
    id = raw.request("code.run", {"code": "import time\nprint('b', flush=True)\ntime.sleep(30)"})
    raw.wait_for(lambda m: m.get("params", {}).get("request_id") == id)
    assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
    result = raw.response(id)["result"]
    assert result["status"] == "interrupted"
    assert result["error"]["name"] == "KeyboardInterrupt"
    assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": False}


def test_a_positive_timeout_too_short_to_count_times_out_at_once(raw):
    """A timeout below a Duration's resolution (1e-18 s) was zero, and refused as not positive,
    with the field `env` and Swift's "nil"; it is the shortest timeout, in every method."""
    for seconds in (1e-19, 5e-324):
        result = raw.result("code.run", {"code": "import time\ntime.sleep(5)", "timeout": seconds})
        assert result["status"] == "timeout", result
        assert result["error"]["value"] == "execution exceeded the 1e-18 s timeout"
    for method, params in (("process.exec", {"command": "sleep 5"}), ("process.code_run", {"code": "import time; time.sleep(5)"})):
        sent = time.monotonic()
        assert raw.result(method, {**params, "timeout": 1e-19})["timed_out"] is True, method
        assert time.monotonic() - sent < 4, method


def test_queued_run_of_a_deleted_context_fails_with_context_deleted(raw):
    ctx = raw.result("context.create")["id"]
    running = raw.request("code.run", {"code": "import time\nprint('s', flush=True)\ntime.sleep(30)", "context": ctx})
    queued = raw.request("code.run", {"code": "print('never')", "context": ctx})
    raw.wait_for(lambda m: m.get("params", {}).get("request_id") == running)
    assert raw.result("context.delete", {"id": ctx}) == {}
    error = error_of(raw.response(queued), -32004)
    assert error["data"]["reason"] == "context_deleted"
    assert raw.response(running)["result"]["status"] == "interrupted"


def test_grace_period_then_interpreter_busy(raw):
    """Code that swallows every stop: answered `timeout` at deadline + 2 s grace; while it still
    holds the interpreter, runs get -32003 and control requests still answer."""
    code = "import time\nwhile True:\n    try:\n        time.sleep(30)\n    except BaseException:\n        pass\n"
    sent = time.monotonic()
    id = raw.request("code.run", {"code": code, "timeout": 0.5})
    queued = raw.request("code.run", {"code": "print('queued')"})
    reply = raw.response(id)
    elapsed = raw.arrival(reply) - sent
    assert 2.3 < elapsed < 3.5, elapsed
    result = reply["result"]
    assert result["status"] == "timeout"
    assert result["error"]["name"] == "TimeoutError"
    assert error_of(raw.response(queued), -32003)["data"]["reason"] == "interpreter_busy"
    assert error_of(raw.call("code.run", {"code": "1"}), -32003)["data"]["reason"] == "interpreter_busy"
    assert raw.result("context.list")["contexts"][0]["id"] == "default"
    # Its answer is sent: no run is left to end `interrupted` (`true` said so, and none followed).
    assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": False}
    assert_still_serving(raw)
    # The record names the limit that was exceeded.
    assert result["error"]["value"] == "execution exceeded the 0.5 s timeout", result["error"]


def test_swallowed_interrupts_escalate_like_a_timeout(pykernel_bin, tmp_path):
    """Code that swallows every interrupt: interrupted again every 250 ms, answered `interrupted`
    once the grace period (0.5 s here) has passed; runs get -32003 until the code returns."""
    raw = RawServer(pykernel_bin, ["--timeout-grace", "0.5"])
    try:
        flag = tmp_path / "stop"
        # The loop runs inside the `try` (its condition and its jump back too): a stop that landed
        # in the condition of a loop around the `try` ended the code, and the interpreter was free.
        code = ("import os, time\ncaught = 0\nstarted = False\n"
                "while True:\n"
                "    try:\n"
                f"        while not os.path.exists({str(flag)!r}):\n"
                "            if not started:\n                started = True\n                print('started', flush=True)\n"
                "            time.sleep(0.05)\n"
                "        break\n"
                "    except BaseException:\n        caught += 1\n")
        id = raw.request("code.run", {"code": code, "timeout": 0})
        raw.wait_for(lambda m: m.get("params", {}).get("request_id") == id)
        sent = time.monotonic()
        assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
        reply = raw.response(id)
        assert 0.45 < raw.arrival(reply) - sent < 2.0
        assert reply["result"]["status"] == "interrupted"
        assert reply["result"]["error"]["name"] == "KeyboardInterrupt"
        assert error_of(raw.call("code.run", {"code": "1"}), -32003)["data"]["reason"] == "interpreter_busy"
        flag.touch()
        deadline = time.monotonic() + 10
        while True:
            reply = raw.call("code.run", {"code": "print(caught >= 2)"})
            if "result" in reply or time.monotonic() > deadline:
                break
            time.sleep(0.02)  # polled: nothing announces the interpreter's recovery
        assert reply["result"]["stdout"] == "True\n"  # stopped repeatedly, then the interpreter recovered
        # An interrupt the code does not swallow is still answered at once.
        # The marker and the sleep in one native call: the stop cannot land between them.
        id = raw.request("code.run", {"code": "import functools, itertools, time\n"
                                              "list(itertools.chain(map(functools.partial(print, flush=True), ['s']), map(time.sleep, [30])))"})
        raw.wait_for(lambda m: m.get("params", {}).get("request_id") == id and m.get("method") == "code.output")
        raw.result("code.interrupt", {"context": "default"})
        error = raw.response(id)["result"]["error"]
        assert error["name"] == "KeyboardInterrupt" and "map(time.sleep, [30])" in error["traceback"], error
    finally:
        raw.kill()


STARTED = "print('started', flush=True)\n"
# Python code blocking every signal on the interpreter thread while it loops (restored at its end).
# The marker is printed inside the `try`: a stop sent as soon as the client has it (flushed output
# arrives at once) must not land before the `try`.
BLOCKING_SIGNALS = ("import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n"
                    + "try:\n    " + STARTED + "    while True:\n        pass\nfinally:\n    signal.pthread_sigmask(signal.SIG_SETMASK, [])\n")


def started(id):
    return lambda m: m.get("method") == "code.output" and m["params"].get("request_id") == id


def assert_stopped_where_it_ran(error, name):
    """A stop raised in the cell's loop (not the grace period's answer for code that did not stop)."""
    assert error["name"] == name, error
    assert error["traceback"].startswith('Traceback (most recent call last):\n  File "<cell-'), error
    assert "grace period" not in error["traceback"], error


@pytest.mark.parametrize("stop", ["interrupt", "timeout"])
def test_running_bytecode_is_stopped_without_a_signal(raw, stop):
    """The eval loop's breaker stops a loop even when the interpreter thread blocks every signal
    (before: no signal arrived, so the run was answered after the grace period, still running)."""
    id = raw.request("code.run", {"code": BLOCKING_SIGNALS, **({"timeout": 0.3} if stop == "timeout" else {})})
    raw.wait_for(started(id))
    if stop == "interrupt":
        assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
    result = raw.response(id)["result"]
    assert result["status"] == ("interrupted" if stop == "interrupt" else "timeout")
    assert_stopped_where_it_ran(result["error"], "KeyboardInterrupt" if stop == "interrupt" else "TimeoutError")
    # The interpreter is free, its signal mask restored (a sleep is interrupted again), and the
    # stop signal left pending while blocked raised nothing when unblocked.
    assert raw.call("code.run", {"code": "import time\ntime.sleep(0.05)\nprint('slept')"})["result"]["stdout"] == "slept\n"
    id = raw.request("code.run", {"code": "import time\n" + STARTED + "time.sleep(30)"})
    raw.wait_for(started(id))
    assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
    assert_stopped_where_it_ran(raw.response(id)["result"]["error"], "KeyboardInterrupt")


@pytest.mark.parametrize("wait", ["while True:\n        pass", "time.sleep(30)"])
@pytest.mark.parametrize("stop", ["interrupt", "timeout"])
def test_a_caught_stop_is_not_raised_again(raw, stop, wait):
    """A stop reaches a loop by the eval breaker and may also arrive as a signal (a sleep by the
    signal, anticipated before the request is decided or the deadline has come): the second
    arrival raises nothing, neither in the code that caught the first nor in the next run."""
    name = "KeyboardInterrupt" if stop == "interrupt" else "TimeoutError"
    code = ("import time\ntry:\n    " + STARTED + f"    {wait}\nexcept BaseException as e:\n"
            "    print('caught', type(e).__name__, flush=True)\ntime.sleep(0.1)\nx = sum(range(10**6))\nprint('after')\n")
    id = raw.request("code.run", {"code": code, **({"timeout": 0.3} if stop == "timeout" else {})})
    raw.wait_for(started(id))
    if stop == "interrupt":
        assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
    result = raw.response(id)["result"]
    assert result["stdout"] == f"started\ncaught {name}\nafter\n", result
    assert result["status"] == ("interrupted" if stop == "interrupt" else "timeout")
    reply = raw.call("code.run", {"code": "import time\ntime.sleep(0.1)\nfor _ in range(10**5): pass\nprint('fine')"})
    assert reply["result"]["status"] == "ok" and reply["result"]["stdout"] == "fine\n", reply


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_an_interrupt_not_taken_is_repeated_once_every_250_ms(raw, isolation):
    """An interrupted run that goes on is interrupted again every 250 ms (until the grace period
    ends it). A process context's worker repeats it itself, and the server also sent it repeats,
    in step: two stops at once, the second raised in the code's handler of the first (a loop
    that caught every `KeyboardInterrupt` was ended by one in its `except` clause)."""
    context = raw.result("context.create", {"isolation": isolation})["id"]
    code = ("import time\nt0 = time.monotonic()\ncaught = []\n"
            "while time.monotonic() - t0 < 1.1:\n    try:\n        " + STARTED.replace("\n", "\n        ")
            + "while time.monotonic() - t0 < 1.1:\n            time.sleep(0.005)\n"
            "    except KeyboardInterrupt:\n        caught.append(time.monotonic())\n"
            "print([round(b - a, 3) for a, b in zip(caught, caught[1:])])\n")
    id = raw.request("code.run", {"code": code, "context": context})
    raw.wait_for(started(id))
    assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
    result = raw.response(id)["result"]
    assert result["status"] == "interrupted" and result["stdout"].startswith("started\n"), result
    gaps = json.loads(result["stdout"].splitlines()[-1])  # printed: no stop escaped the loop
    assert len(gaps) >= 2 and all(gap > 0.15 for gap in gaps), result
    raw.result("context.delete", {"id": context})


@pytest.mark.parametrize("isolation", ["namespace", "process"])
@pytest.mark.parametrize("first", ["timeout", "interrupt"])
def test_a_runs_first_stop_decides_its_status_record_and_the_interrupts_answer(raw, first, isolation):
    """A timeout and an interrupt on one run: the first decided is the run's stop. Here the code
    catches every stop for a while, and the other kind comes meanwhile: an interrupt after the
    timeout was answered `true` and raised `KeyboardInterrupt` in a run answered `timeout`; the
    deadline of a run interrupted first raised `TimeoutError` in a run answered `interrupted`.
    Now only the first stop's exception is raised (its repeats), an interrupt after the timeout
    is answered `false`, and the status and the record agree."""
    context = raw.result("context.create", {"isolation": isolation})["id"]
    name = "TimeoutError" if first == "timeout" else "KeyboardInterrupt"
    code = ("import time\nt0 = time.monotonic()\n"
            "def wait_until(limit):\n    while True:\n        try:\n            " + STARTED.replace("\n", "\n            ")
            + "while time.monotonic() < limit:\n                time.sleep(0.01)\n            return\n"
            "        except BaseException as e:\n            print('caught', type(e).__name__, flush=True)\n"
            "wait_until(t0 + 1.0)\ntime.sleep(30)\n")
    # The deadline: before the interrupt (sent once the code runs), or well after it.
    id = raw.request("code.run", {"code": code, "context": context, "timeout": 0.3 if first == "timeout" else 0.6})
    raw.wait_for(started(id))
    if first == "interrupt":
        assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
    raw.wait_for(lambda m: m.get("method") == "code.output" and "caught" in m["params"]["text"])
    if first == "timeout":
        assert raw.result("code.interrupt", {"context": context}) == {"interrupted": False}
    result = raw.response(id)["result"]
    caught = [line for line in result["stdout"].splitlines() if line.startswith("caught")]
    assert caught and set(caught) == {f"caught {name}"}, result
    assert (result["status"], result["error"]["name"]) == (first if first == "timeout" else "interrupted", name), result
    assert_stopped_where_it_ran(result["error"], name)
    assert "time.sleep(30)" in result["error"]["traceback"], result  # a repeat, after the waiting
    raw.result("context.delete", {"id": context})


# A cell whose value the engine finds with Python code of its own (`ast`), before the code runs.
ENGINE_BEFORE_CODE = "print('cell', flush=True)\n5"


@pytest.mark.parametrize("isolation", ["namespace", "process"])
@pytest.mark.parametrize("stop", ["interrupt", "timeout"])
def test_a_stop_while_the_engine_runs_python_of_its_own_shows_no_frame_of_it(raw, stop, isolation):
    """A stop that came while the engine ran Python code of its own around the cell (how to show
    its value: `ast.walk`, made slow here) was raised there: the record's traceback was the
    engine's (`ast.py`'s `walk`, 2 runs in 800 of a sweep). It is held, and raised where the
    cell's code begins: the record is the stop's line alone, as for a run stopped before its
    code starts, and the code did not run."""
    context = raw.result("context.create", {"isolation": isolation})["id"]
    slow_walk = ("import ast, time\nplain_walk = ast.walk\n"
                 "def walk(node):\n    print('walking', flush=True)\n    time.sleep(0.5)\n    return plain_walk(node)\n"
                 "ast.walk = walk\n")
    assert raw.result("code.run", {"code": slow_walk, "context": context})["status"] == "ok"
    id = raw.request("code.run", {"code": ENGINE_BEFORE_CODE, "context": context, **({"timeout": 0.2} if stop == "timeout" else {})})
    raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"].get("request_id") == id)
    if stop == "interrupt":
        assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
    result = raw.response(id)["result"]
    expected = ("KeyboardInterrupt\n" if stop == "interrupt" else "TimeoutError: execution exceeded the 0.2 s timeout\n")
    assert (result["status"], result["error"]["traceback"]) == ("interrupted" if stop == "interrupt" else "timeout", expected), result
    assert result["stdout"] == "walking\n", result  # the cell's code did not run
    raw.result("code.run", {"code": "import ast\nast.walk = plain_walk", "context": context})
    assert raw.result("code.run", {"code": ENGINE_BEFORE_CODE, "context": context})["stdout"] == "cell\n"
    raw.result("context.delete", {"id": context})


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_stop_in_the_engines_callback_as_the_code_lets_a_cell_go_is_raised_in_the_code(raw, isolation):
    """The engine keeps an old cell's source while a function of it lives, and forgets it in a
    weak reference's callback as the code lets the last one go. A stop that came while the code
    freed it (here during the C loop that frees a 15-million-item list, the cell's function last)
    was raised in that callback: swallowed ("Exception ignored in: ...forget" on stderr), the
    code ran on until the stop's repeat, and the cell's source was never forgotten. It is held
    through the callback and raised in the code right after."""
    context = raw.result("context.create", {"isolation": isolation})["id"]
    kept = raw.result("code.run", {"code": "keep = [lambda: 0] + list(range(15_000_000))", "context": context}, timeout=60)
    cell = f"<cell-{kept['execution_count']}>"
    for attempt in range(3):
        id = raw.request("code.run", {"code": "print('freeing', flush=True)\ndel keep\nwhile True:\n    pass", "context": context})
        raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"].get("request_id") == id)
        assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
        result = raw.response(id, timeout=60)["result"]
        # On a loaded machine the interrupt can land in the print itself, before the freeing
        # (`keep` still bound): what is checked did not happen, so again.
        if not result["error"]["traceback"].endswith(", line 1, in <module>\n    print('freeing', flush=True)\nKeyboardInterrupt\n"):
            break
    assert (result["status"], result["stderr"]) == ("interrupted", ""), result
    assert result["error"]["traceback"].endswith(", line 3, in <module>\n    while True:\nKeyboardInterrupt\n"), result
    forgotten = raw.result("code.run", {"code": f"import linecache\nprint({cell!r} in linecache.cache)", "context": context})
    assert forgotten["stdout"] == "False\n", forgotten
    raw.result("context.delete", {"id": context})


# Code the engine calls as it describes the exception a cell raised (its record), announcing
# itself and then waiting: a loop, or a sleep.
DESCRIBING = "import time\ndef wait():\n    print('describing', flush=True)\n    {wait}\n"
DESCRIBED = {
    "str": "class E(Exception):\n    def __str__(self):\n        wait()\nraise E()",
    "group-member": "class E(Exception):\n    def __str__(self):\n        wait()\nraise ExceptionGroup('g', [E()])",
    "argument": "class A:\n    def __str__(self):\n        wait()\nraise ValueError(A())",  # described natively
    "suggestion-dir": "class P:\n    def __dir__(self):\n        wait()\nP().xx",
}


@pytest.mark.parametrize("isolation", ["namespace", "process"])
@pytest.mark.parametrize("stop", ["interrupt", "timeout"])
@pytest.mark.parametrize("wait", ["while True:\n        pass", "time.sleep(30)"], ids=["loop", "sleep"])
@pytest.mark.parametrize("described", sorted(DESCRIBED))
def test_a_stop_while_the_exception_is_described_ends_the_run(raw, described, wait, stop, isolation):
    """The code the engine calls to describe a cell's exception (`__str__` of it, of a group's
    member or of its argument, the `__dir__` a "Did you mean" suggestion searches) ran after the
    run's supervision had ended: a loop there was never answered (nor were the other namespace
    contexts' runs, behind it), `code.interrupt` answered `false`, and a sleep ignored the
    timeout. The description is part of the run: the stop ends it with the stop's line."""
    context = raw.result("context.create", {"isolation": isolation})["id"]
    code = DESCRIBING.format(wait=wait) + DESCRIBED[described]
    id = raw.request("code.run", {"code": code, "context": context, **({"timeout": 0.3} if stop == "timeout" else {})})
    raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"].get("request_id") == id)
    if stop == "interrupt":
        assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
    result = raw.response(id)["result"]
    expected = ("KeyboardInterrupt\n" if stop == "interrupt" else "TimeoutError: execution exceeded the 0.3 s timeout\n")
    assert (result["status"], result["error"]["traceback"]) == ("interrupted" if stop == "interrupt" else "timeout", expected), result
    assert result["stdout"] == "describing\n", result
    # The context and the others run on.
    assert raw.result("code.run", {"code": "print('next')", "context": context})["stdout"] == "next\n"
    assert raw.result("code.run", {"code": "print('other')"})["stdout"] == "other\n"
    raw.result("context.delete", {"id": context})


def test_a_run_stopped_while_its_exception_is_described_puts_its_environment_back(raw):
    """A run's `env` is put back after a stop that came as its exception was described."""
    code = DESCRIBING.format(wait="time.sleep(30)") + DESCRIBED["str"]
    reply = raw.call("code.run", {"code": code, "env": {"PYKERNEL_DESCRIBED": "1"}, "timeout": 0.3})
    assert reply["result"]["status"] == "timeout", reply
    after = raw.result("code.run", {"code": "import os\nprint(os.environ.get('PYKERNEL_DESCRIBED'))"})
    assert after["stdout"] == "None\n", after


def test_an_exception_description_that_swallows_every_stop_is_answered_after_the_grace_period(pykernel_bin):
    """A `__str__` that swallows every stop is code that does not stop: the run is answered
    `timeout` at deadline + grace, and runs get -32003 while it holds the interpreter (before,
    nothing was answered: the run, and every namespace context's runs, waited for ever)."""
    raw = RawServer(pykernel_bin, ["--timeout-grace", "0.5"])
    try:
        code = DESCRIBING.format(wait="while True:\n        try:\n            time.sleep(30)\n        except BaseException:\n            pass") + DESCRIBED["str"]
        sent = time.monotonic()
        id = raw.request("code.run", {"code": code, "timeout": 0.3})
        reply = raw.response(id)
        assert 0.7 < raw.arrival(reply) - sent < 2.5, raw.arrival(reply) - sent
        result = reply["result"]
        assert result["status"] == "timeout" and "grace period" in result["error"]["traceback"], result
        assert error_of(raw.call("code.run", {"code": "1"}), -32003)["data"]["reason"] == "interpreter_busy"
    finally:
        raw.kill()


WAITS = {
    "sleep": "time.sleep(0.4)",
    "loop": "while time.monotonic() - t0 < 0.4:\n    pass",
    "event": "import threading\nthreading.Event().wait(0.4)",
    "select": "import select\nselect.select([], [], [], 0.4)",
}


@pytest.mark.parametrize("wait", sorted(WAITS))
def test_interrupt_requests_that_stop_nothing_leave_the_run_alone(raw, wait):
    """A `code.interrupt` line wakes the interpreter before it is decoded (its handling overlaps
    the wake-up): one that turns out to stop nothing here (another, idle context; an unknown
    context; an unknown param) leaves the run as it was: a sleep or wait still lasts its whole
    time, a loop goes on, and the run ends `ok`."""
    idle = raw.result("context.create")["id"]
    code = f"import time\nt0 = time.monotonic()\n{STARTED}{WAITS[wait]}\nprint(time.monotonic() - t0 >= 0.4)\n"
    id = raw.request("code.run", {"code": code})
    raw.wait_for(started(id))
    for _ in range(3):
        assert raw.result("code.interrupt", {"context": idle}) == {"interrupted": False}
        assert error_of(raw.call("code.interrupt", {"context": "nope"}), -32001)["data"]["reason"] == "context_not_found"
        error = error_of(raw.call("code.interrupt", {"context": "default", "run": 1}), -32602)
        assert error["data"]["reason"] == "unknown_parameter", error
    result = raw.response(id)["result"]
    assert result["status"] == "ok", result
    assert result["stdout"] == "started\nTrue\n", result
    # The next interrupt of the run in progress still stops it where it waits.
    id = raw.request("code.run", {"code": "import time\n" + STARTED + "time.sleep(30)"})
    raw.wait_for(started(id))
    assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
    assert_stopped_where_it_ran(raw.response(id)["result"]["error"], "KeyboardInterrupt")


def in_system_call(pid, number):
    """Whether a thread of process `pid` waits in system call `number` (x86-64 numbers); `True`
    when no thread's call can be read (no such file, no permission): then it cannot be told."""
    readable = False
    for thread in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{thread}/syscall") as call:
                readable = True
                if call.read().split(" ", 1)[0] == str(number):
                    return True
        except OSError:
            pass  # the thread ended, or its call cannot be read
    return not readable


def test_native_code_holding_the_gil_in_a_blocking_call_is_interrupted_at_once(raw):
    """`pause()` called with the GIL held (ctypes.PyDLL): the eval breaker cannot reach it, so the
    interrupt's real signal follows within the answer's hold, not at the watchdog's first repeat
    (250 ms later)."""
    id = raw.request("code.run", {"code": "import ctypes\nlibc = ctypes.PyDLL(None)\n" + STARTED + "libc.pause()\n"})
    raw.wait_for(started(id))
    # In pause() (system call 34) before the interrupt: sent right after the marker, it could
    # land on the print's line still (the eval breaker, as the print returned).
    deadline = time.monotonic() + 10
    while not in_system_call(raw.process.pid, 34):
        assert time.monotonic() < deadline, "the code never reached pause()"
        time.sleep(0.001)
    sent = time.monotonic()
    assert raw.result("code.interrupt", {"context": "default"}) == {"interrupted": True}
    reply = raw.response(id)
    assert raw.arrival(reply) - sent < 0.2
    assert reply["result"]["status"] == "interrupted"
    assert_stopped_where_it_ran(reply["result"]["error"], "KeyboardInterrupt")
    assert "libc.pause()" in reply["result"]["error"]["traceback"]


# ---------------------------------------------------------------- stdout purity and logging


def test_stdout_carries_only_json_even_when_code_writes_to_descriptors(raw):
    code = ("import os, sys, subprocess\n"
            "os.system('echo hi; echo err >&2')\n"
            "os.write(1, b'raw')\n"
            "os.write(2, b'rawerr')\n"
            "subprocess.run(['printf', 'sub'])\n"
            "print('py')\n"
            "sys.__stdout__.write('dunder\\n'); sys.__stdout__.flush()\n")
    id = raw.request("code.run", {"code": code})
    result = raw.response(id)["result"]
    assert result["status"] == "ok", result
    # Every piece is captured (the order of direct os.write output relative to print is not
    # guaranteed, see docs/protocol.md).
    for piece in ("hi\n", "raw", "sub", "py\n", "dunder\n"):
        assert piece in result["stdout"], result["stdout"]
    assert len(result["stdout"]) == len("hi\nrawsubpy\ndunder\n")
    assert "err\n" in result["stderr"] and "rawerr" in result["stderr"]
    assert len(result["stderr"]) == len("err\nrawerr")
    notes = raw.notifications(id)
    assert "".join(n["params"]["text"] for n in notes if n["params"]["stream"] == "stdout") == result["stdout"]
    assert raw.bad_lines == []
    raw.close_stdin()
    assert raw.wait_exit() == 0
    raw.join_output()
    assert raw.bad_lines == []
    assert b"raw" not in raw.stderr and b"hi" not in raw.stderr


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_subprocess_s_stdout_line_comes_before_the_stderr_line_it_wrote_after(pykernel_bin, isolation):
    """`echo o; echo e >&2` in a subprocess: its two pipes are read in the order they were made
    (stdout first) when both hold output. They were read in a dictionary's order, seeded per
    process: `e` came first in every run of about half the servers. Several servers, so the
    seeds differ."""
    code = "import subprocess\nsubprocess.run(['sh', '-c', 'echo o1; echo e1 >&2'])\n"
    for _ in range(6):
        raw = RawServer(pykernel_bin, ["--isolation", isolation])
        try:
            for _ in range(2):
                id = raw.request("code.run", {"code": code})
                assert raw.response(id)["result"]["status"] == "ok"
                assert [(n["params"]["stream"], n["params"]["text"]) for n in raw.notifications(id)
                        if n["method"] == "code.output"] == [
                    ("stdout", "o1\n"), ("stderr", "e1\n")]
        finally:
            raw.kill()


def test_prints_keep_their_order_around_a_subprocess_they_wait_for(raw):
    # Back-to-back prints are staged by the interpreter thread without the output lock; the
    # subprocess's output, read from the capture pipe by another thread, still comes after them.
    code = ("import subprocess\n"
            "for i in range(500): print(i)\n"
            "subprocess.run(['echo', 'sub'])\n"
            "for i in range(500): print(i)\n")
    lines = "".join(f"{i}\n" for i in range(500))
    for _ in range(5):
        id = raw.request("code.run", {"code": code})
        result = raw.response(id)["result"]
        assert result["status"] == "ok", result
        assert result["stdout"] == lines + "sub\n" + lines
        notes = raw.notifications(id)
        assert "".join(n["params"]["text"] for n in notes if n["params"]["stream"] == "stdout") == lines + "sub\n" + lines


def test_a_background_process_writes_to_the_context_that_started_it(kernel):
    """A process a context's code leaves running writes to that context's own capture pipes: what
    it writes while another context runs is held for its own context's next run (before, it went
    into whichever run was in progress, and after `context.delete` kept filling other contexts'
    runs); once the context is deleted its writes fail (`yes` ends by SIGPIPE). Other contexts'
    subprocesses still reach their own runs."""
    a, b = kernel.create_context(), kernel.create_context()
    started = kernel.run_code("import subprocess\np = subprocess.Popen('sleep 0.2; for i in 1 2 3; do echo out$i; echo err$i >&2; done; "
                              "sleep 0.3; echo late', shell=True)", context=a)
    assert (started.status, started.stdout) == ("ok", "")
    other = kernel.run_code("import time, os\ntime.sleep(1)\nos.system('echo b-sub')\nprint('b')", context=b)
    assert (other.stdout, other.stderr) == ("b-sub\nb\n", "")
    again = kernel.run_code("p.wait()\nprint('a')", context=a)
    assert again.stdout == "out1\nout2\nout3\nlate\na\n" and again.stderr == "err1\nerr2\nerr3\n", again
    spammer = kernel.run_code("import subprocess, sys\ny = subprocess.Popen(['yes'])\nprint(y.pid, file=sys.stderr)", context=a)
    pid = int(spammer.stderr)
    process = os.pidfd_open(pid)
    try:
        kernel.delete_context(a)
        assert select.select([process], [], [], 20)[0], "a deleted context's process kept writing"
    finally:
        os.close(process)
    assert kernel.run_code("print('b2')", context=b).stdout == "b2\n"
    assert kernel.run_code("import os\nos.system('echo sub')").stdout == "sub\n"


THREAD_SPAWNS = """
import threading

def spawn_all(go=GO, done=DONE):
    # Its own imports and names: a deleted context's globals are cleared.
    import os, pty, subprocess, time
    deadline = time.monotonic() + 30
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    subprocess.run(['echo', 'a-run'])
    subprocess.run('echo a-err >&2', shell=True)
    subprocess.run('echo a-merged >&2', shell=True, stderr=subprocess.STDOUT)
    print('captured', subprocess.run(['echo', 'a-piped'], stdout=subprocess.PIPE, text=True).stdout, end='')
    os.system('echo a-system')
    os.waitpid(os.posix_spawnp('echo', ['echo', 'a-spawn'], os.environ), 0)
    child = os.fork()
    if child == 0:
        try:
            print('a-fork', flush=True)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    child, terminal = pty.fork()
    if child == 0:
        print('a-pty', flush=True)
        os._exit(0)
    seen = b''
    while True:  # to the child's end: unbuffered (PYTHONUNBUFFERED), its print is two writes
        try:
            chunk = os.read(terminal, 100)
        except OSError:  # EIO: the child's side is closed
            break
        if not chunk:
            break
        seen += chunk
    print('terminal', seen)
    os.waitpid(child, 0)
    open(done, 'w').close()

thread = threading.Thread(target=spawn_all)
thread.start()
"""


def test_processes_a_contexts_thread_starts_write_to_that_context(kernel, tmp_path):
    """A thread of context A starting processes while B runs (subprocess, os.system,
    posix_spawn, os.fork): what they write goes to A's next run, as the thread's own prints do
    (it went into B's run); redirections the code asks for (a pipe, stderr into stdout, a
    terminal) are the processes' own. A deleted context's thread's processes write into a pipe
    nobody reads: not into another context's run."""
    go, done = tmp_path / "go", tmp_path / "done"
    a, b = kernel.create_context(), kernel.create_context()
    started = kernel.run_code(f"GO, DONE = {str(go)!r}, {str(done)!r}\n" + THREAD_SPAWNS, context=a)
    assert (started.status, started.stdout, started.stderr) == ("ok", "", ""), started
    other = kernel.run_code(f"import os, time\nopen({str(go)!r}, 'w').close()\n"
                            f"while not os.path.exists({str(done)!r}): time.sleep(0.005)\nprint('b')", context=b, timeout=60)
    assert (other.stdout, other.stderr) == ("b\n", ""), other
    again = kernel.run_code("thread.join()\nprint('a')", context=a)
    assert again.stdout == ("a-run\na-merged\ncaptured a-piped\na-system\na-spawn\na-fork\nterminal b'a-pty\\r\\n'\na\n"), again
    assert again.stderr == "a-err\n", again
    go.unlink()
    done.unlink()
    kernel.run_code(f"GO, DONE = {str(go)!r}, {str(done)!r}\n" + THREAD_SPAWNS, context=a)
    kernel.delete_context(a)
    other = kernel.run_code(f"import os, time\nopen({str(go)!r}, 'w').close()\n"
                            f"while not os.path.exists({str(done)!r}): time.sleep(0.005)\nprint('b')", context=b, timeout=60)
    assert (other.stdout, other.stderr) == ("b\n", ""), other


def test_an_interrupt_answered_true_means_the_run_ends_interrupted(raw):
    """A quick run and its interrupt, written together or one after the other: `true` only when
    the run's answer is `interrupted` (an interrupt read with its run, before the interpreter took
    it, answered `false` while the run went on; answered later, the run may have ended `ok`)."""
    answers = set()
    for attempt in range(100):
        run_id, interrupt_id = raw.next_id(), raw.next_id()
        lines = [{"jsonrpc": "2.0", "id": run_id, "method": "code.run", "params": {"code": "x = 1"}},
                 {"jsonrpc": "2.0", "id": interrupt_id, "method": "code.interrupt", "params": {"context": "default"}}]
        if attempt % 2:
            raw.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        else:
            for line in lines:
                raw.send(line)
        status = raw.response(run_id)["result"]["status"]
        interrupted = raw.response(interrupt_id)["result"]["interrupted"]
        assert interrupted == (status == "interrupted"), (attempt, interrupted, status)
        answers.add(interrupted)
    assert True in answers  # an interrupt read with its run stops it


def test_an_interrupt_answered_true_then_a_delete_still_ends_the_run_interrupted(raw):
    """A run, its interrupt and its context's deletion written together: the interrupt said
    `true` for the run about to begin, which the deletion then failed as `context_deleted`."""
    for attempt in range(20):
        context = raw.result("context.create", {})["id"]
        run_id, interrupt_id, delete_id = raw.next_id(), raw.next_id(), raw.next_id()
        lines = [{"jsonrpc": "2.0", "id": run_id, "method": "code.run",
                  "params": {"code": "import time\ntime.sleep(5)", "context": context, "timeout": 30}},
                 {"jsonrpc": "2.0", "id": interrupt_id, "method": "code.interrupt", "params": {"context": context}},
                 {"jsonrpc": "2.0", "id": delete_id, "method": "context.delete", "params": {"id": context}}]
        time.sleep(0.02)  # the interpreter thread idle long enough to sleep: it takes the run late
        raw.send(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
        interrupted = raw.response(interrupt_id)["result"]["interrupted"]
        run = raw.response(run_id)
        assert raw.response(delete_id)["result"] == {}
        if interrupted:
            assert run.get("result", {}).get("status") == "interrupted", (attempt, run)


def test_code_and_the_processes_it_starts_run_at_the_servers_own_priority(raw):
    """The interpreter thread, and every process the code or the process API starts, ran at nice
    -2: a thread the Swift runtime's pool made raises it, and Linux threads and processes inherit
    their creator's (python3's code runs at the nice value it was started with)."""
    own = os.nice(0)  # the server's: started by this process
    code = "import os, subprocess\nprint(os.nice(0), subprocess.run(['nice'], capture_output=True, text=True).stdout.strip())"
    assert raw.result("code.run", {"code": code})["stdout"] == f"{own} {own}\n"
    assert raw.result("process.exec", {"command": "nice"})["stdout"] == f"{own}\n"
    raw.result("pty.create", {"id": "nice", "command": "nice"})
    exited = raw.wait_for(lambda m: m.get("method") == "pty.exited" and m["params"]["id"] == "nice", what="the PTY's end")
    assert exited["params"]["exit_code"] == 0
    written = b"".join(base64.b64decode(m["params"]["data"]) for m in raw.messages_since(0)
                       if m.get("method") == "pty.output" and m["params"]["id"] == "nice")
    assert written == f"{own}\r\n".encode()


def test_a_run_in_a_context_whose_directory_is_gone_names_the_context(raw, tmp_path):
    """Every -32602 names `data.field`: a run in a namespace context whose directory was deleted
    (and the interpreter sits elsewhere) is refused naming `context`."""
    directory = tmp_path / "gone"
    directory.mkdir()
    context = raw.result("context.create", {"cwd": str(directory)})["id"]
    directory.rmdir()
    raw.result("code.run", {"code": "pass"})  # the interpreter leaves for the default context's directory
    error = raw.call("code.run", {"code": "pass", "context": context})["error"]
    assert (error["code"], error["data"]) == (-32602, {"reason": "invalid_cwd", "field": "context"}), error


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_a_run_after_its_contexts_directory_was_removed_is_refused(raw, tmp_path, isolation):
    """The interpreter still in the directory when it was removed (the context's last run was
    there): the next run went on in a directory that is gone (`os.getcwd()` failed in it)."""
    directory = tmp_path / "removed"
    directory.mkdir()
    context = raw.result("context.create", {"cwd": str(directory), "isolation": isolation})["id"]
    assert raw.result("code.run", {"code": "import os\nprint(os.getcwd())", "context": context})["stdout"] == f"{directory}\n"
    directory.rmdir()
    error = raw.call("code.run", {"code": "import os\nos.getcwd()", "context": context})["error"]
    assert (error["code"], error["data"]["reason"]) == (-32602, "invalid_cwd"), error
    assert f"context {context}," in error["message"], error  # the client's id (a worker has its own)
    raw.result("context.delete", {"id": context})


def test_a_process_context_whose_creation_directory_is_gone_is_not_told_to_restart(raw, tmp_path):
    """A process context's directory removed after it ran: `code.run` pointed to `context.restart`
    ("starts a process context afresh in the directory it was created in"), which refused that
    very context (`invalid_cwd`: that directory is gone), and the run's message began in lower
    case, unlike the code's other messages. Now neither suggests what cannot work, both say the
    way out that does (make the directory again), and a restart then works."""
    directory = tmp_path / "created"
    directory.mkdir()
    context = raw.result("context.create", {"cwd": str(directory), "isolation": "process"})["id"]
    assert raw.result("code.run", {"code": "x = 1", "context": context})["status"] == "ok"
    directory.rmdir()
    run = error_of(raw.call("code.run", {"code": "print(1)", "context": context}), -32602)
    restart = error_of(raw.call("context.restart", {"id": context}), -32602)
    assert (run["data"], restart["data"]) == ({"reason": "invalid_cwd", "field": "context"}, {"reason": "invalid_cwd", "field": "id"})
    for error in (run, restart):
        assert error["message"].startswith(f"The working directory of context {context}, {directory}, "), error
        assert error["message"].endswith(", or delete the context and create another."), error
        assert "make the directory again" in error["message"] and "context.restart" not in error["message"], error
    directory.mkdir()
    assert raw.result("context.restart", {"id": context})["state"] == "alive"
    assert raw.result("code.run", {"code": "import os\nprint(os.getcwd())", "context": context})["stdout"] == f"{directory}\n"
    raw.result("context.delete", {"id": context})


@pytest.mark.parametrize("isolation", ["namespace", "process"])
def test_the_default_context_whose_directory_is_gone_is_not_told_to_delete_itself(pykernel_bin, tmp_path, isolation):
    """The server's directory (the `default` context's) removed: its runs (and a process default's
    restart) said "or delete the context and create another", which `context.delete` refuses for
    `default` (-32002). They name the way that works instead."""
    from pykernel_raw import RawServer

    directory = tmp_path / "served"
    directory.mkdir()
    server = RawServer(pykernel_bin, args=("--isolation", isolation), cwd=str(directory))
    try:
        assert server.result("code.run", {"code": "print(1)"})["stdout"] == "1\n"
        directory.rmdir()
        errors = [error_of(server.call("code.run", {"code": "print(2)"}), -32602)]
        if isolation == "process":
            errors.append(error_of(server.call("context.restart", {"id": "default"}), -32602))
        for error in errors:
            assert error["data"]["reason"] == "invalid_cwd", error
            assert error["message"].startswith(f"The working directory of context default, {directory}, "), error
            assert error["message"].endswith(
                ", or create a context with another working directory (the default context cannot be deleted)."), error
        other = server.result("context.create", {"cwd": str(tmp_path), "isolation": isolation})["id"]
        assert server.result("code.run", {"code": "print(3)", "context": other})["stdout"] == "3\n"
        directory.mkdir()
        assert server.result("code.run", {"code": "print(4)"})["stdout"] == "4\n"
    finally:
        server.kill()


@pytest.mark.parametrize("isolation,mover", [("namespace", "run"), ("namespace", "thread"), ("process", "run")])
def test_a_run_after_the_code_removed_the_directory_it_moved_into_is_refused(raw, tmp_path, isolation, mover):
    """`os.chdir(d); os.rmdir(d)` (python3 stays in the removed directory: `os.getcwd()` fails):
    the context went back to the directory it had before, silently, and the next run's relative
    writes landed there. It is refused now, naming the removed directory and the ways out: a
    directory made again under its name is entered; context.restart starts a process context afresh."""
    before, removed = tmp_path / "before", tmp_path / "removed"
    before.mkdir()
    context = raw.result("context.create", {"cwd": str(before), "isolation": isolation})["id"]
    leave = f"import os\nos.mkdir({str(removed)!r})\nos.chdir({str(removed)!r})\nos.rmdir({str(removed)!r})"
    if mover == "thread":
        leave = f"import threading\nthread = threading.Thread(target=exec, args=({leave!r},))\nthread.start()\nthread.join()"
    assert raw.result("code.run", {"code": leave, "context": context})["status"] == "ok"
    write = "import os\nopen('written.txt', 'w').write('x')\nprint(os.getcwd())"
    error = raw.call("code.run", {"code": write, "context": context})["error"]
    assert (error["code"], error["data"]) == (-32602, {"reason": "invalid_cwd", "field": "context"}), error
    # (A thread's directory is recorded as it moves there: removed after, as from outside.)
    why = "was removed by the context's own code after it moved there" if mover == "run" else "is no longer accessible"
    assert error["message"].startswith(f"The working directory of context {context}, {removed}, {why}"), error
    assert "make the directory again" in error["message"], error
    if isolation == "process":  # restarted, it runs in the directory it was created in, still there
        assert error["message"].endswith(f"; context.restart starts it afresh in {before}, the directory it was created in."), error
    else:
        assert "context.restart" not in error["message"] and error["message"].endswith("."), error
    assert not (before / "written.txt").exists()
    listed = [c for c in raw.result("context.list")["contexts"] if c["id"] == context][0]
    assert listed["cwd"] == str(before if isolation == "process" else removed), listed  # a process context's: where it was created
    if isolation == "process":
        assert raw.result("context.restart", {"id": context})["state"] == "alive"
        assert raw.result("code.run", {"code": write, "context": context})["stdout"] == f"{before}\n"
        assert (before / "written.txt").exists()
    else:
        removed.mkdir()
        assert raw.result("code.run", {"code": write, "context": context})["stdout"] == f"{removed}\n"
        assert (removed / "written.txt").exists() and not (before / "written.txt").exists()
    raw.result("context.delete", {"id": context})


def test_quiet_by_default(raw):
    raw.result("code.run", {"code": "print(1)"})
    raw.call("nope")
    raw.close_stdin()
    assert raw.wait_exit() == 0
    raw.join_output()
    assert raw.stderr == b""


def test_log_level_debug_writes_to_stderr_only(pykernel_bin):
    server = RawServer(pykernel_bin, ["--log-level", "debug"])
    try:
        server.result("kernel.info")
        server.result("code.run", {"code": "print('x')"})
        server.close_stdin()
        assert server.wait_exit() == 0
        server.join_output()
        assert server.bad_lines == []
        log = server.stderr.decode()
        assert "debug" in log and "kernel.info" in log and "code.run" in log
    finally:
        server.kill()


def test_bad_log_level_is_refused(pykernel_bin):
    completed = subprocess.run([pykernel_bin, "serve", "--log-level", "chatty"],
                               input=b"", capture_output=True, timeout=30)
    assert completed.returncode != 0
    assert b"--log-level" in completed.stderr
    assert completed.stdout == b""


# ---------------------------------------------------------------- end of input, shutdown, SIGTERM


def test_end_of_input_finishes_pending_requests_and_exits_zero(pykernel_bin):
    requests = b"".join(json.dumps(m).encode() + b"\n" for m in [
        {"jsonrpc": "2.0", "id": 1, "method": "code.run",
         "params": {"code": "import time; time.sleep(0.5); print('slow')"}},
        {"jsonrpc": "2.0", "id": 2, "method": "context.list"},
        {"jsonrpc": "2.0", "id": 3, "method": "code.run", "params": {"code": "print('queued')"}},
    ])
    completed = subprocess.run([pykernel_bin, "serve"], input=requests, capture_output=True, timeout=30)
    assert completed.returncode == 0
    messages = [json.loads(line) for line in completed.stdout.splitlines()]
    replies = {m["id"]: m for m in messages if "id" in m}
    assert set(replies) == {1, 2, 3}
    assert replies[1]["result"]["stdout"] == "slow\n"
    assert replies[3]["result"]["stdout"] == "queued\n"


def _alive(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("isolation", ["namespace", "process"])
@pytest.mark.parametrize("loop", [
    "while True:\n    print(time.time(), flush=True)\n    time.sleep(0.01)",
    "while True:\n    try:\n        time.sleep(0.1)\n    except KeyboardInterrupt:\n        pass",
], ids=["prints", "catches-interrupts-quietly"])
def test_a_client_gone_with_both_pipes_closed_shuts_the_server_down(pykernel_bin, tmp_path, isolation, loop):
    """A client that closes both pipes (or crashes) mid-run: the server logged that writing
    failed and went on running the code, to its timeout (for ever with `timeout: 0`), then the
    queued runs, their output written nowhere. With its input ended and its output gone it now
    shuts down as on SIGTERM: the run stopped, its processes ended, queued runs not started."""
    queued_mark = tmp_path / "queued-ran"
    server = subprocess.Popen([pykernel_bin, "serve", "--isolation", isolation], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child = None
    try:
        for message in [
            {"jsonrpc": "2.0", "id": 1, "method": "code.run", "params": {"timeout": 0, "code":
                "import subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\n"
                f"print('child', child.pid, flush=True)\n{loop}"}},
            {"jsonrpc": "2.0", "id": 2, "method": "code.run", "params": {"code": f"open({str(queued_mark)!r}, 'w').close()"}},
        ]:
            server.stdin.write(json.dumps(message).encode() + b"\n")
        server.stdin.flush()
        first = json.loads(server.stdout.readline())
        child = int(first["params"]["text"].split()[1])
        assert _alive(child)
        closed = time.monotonic()
        server.stdout.close()
        server.stdin.close()
        assert server.wait(timeout=20) == 0
        assert time.monotonic() - closed < 10
        assert "the client is gone" in server.stderr.read().decode()
        deadline = time.monotonic() + 2  # init reaps what the server killed
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the run's subprocess outlived the server"
        assert not queued_mark.exists(), "the queued run ran after the client had gone"
    finally:
        server.kill()
        server.wait()
        if child and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_client_that_closes_only_its_input_still_gets_the_answers(pykernel_bin):
    """The end of input alone does not shut down (docs/protocol.md): runs going on then are
    finished and answered while the client still reads."""
    server = subprocess.Popen([pykernel_bin, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "code.run", "params": {
            "code": "import time\nprint('in', flush=True)\ntime.sleep(1.5)\nprint('out')"}}).encode() + b"\n")
        server.stdin.flush()
        assert json.loads(server.stdout.readline())["params"]["text"] == "in\n"
        server.stdin.close()
        replies = [json.loads(line) for line in server.stdout.read().splitlines()]
        assert replies[-1]["id"] == 1 and replies[-1]["result"]["status"] == "ok"
        assert replies[-1]["result"]["stdout"] == "in\nout\n"
        assert server.wait(timeout=10) == 0
    finally:
        server.kill()
        server.wait()


def test_readme_session(pykernel_bin):
    request = b'{"jsonrpc":"2.0","id":1,"method":"code.run","params":{"code":"print(1+1)"}}\n'
    completed = subprocess.run([pykernel_bin, "serve"], input=request, capture_output=True, timeout=30)
    assert completed.returncode == 0
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert lines[0] == {"jsonrpc": "2.0", "method": "code.output",
                        "params": {"request_id": 1, "stream": "stdout", "text": "2\n"}}
    assert lines[1]["id"] == 1 and lines[1]["result"]["stdout"] == "2\n" and len(lines) == 2


# SIGHUP (a terminal or session that ended) ended the server at once, its commands left running.
@pytest.mark.parametrize("how", ["shutdown", "SIGTERM", "SIGINT", "SIGHUP"])
def test_shutdown_interrupts_the_run_in_flight_and_exits_zero(raw, how):
    run = raw.request("code.run", {"code": "import time\nprint('sleeping', flush=True)\ntime.sleep(30)"})
    queued = raw.request("code.run", {"code": "print('queued')"})
    raw.wait_for(lambda m: m.get("params", {}).get("request_id") == run)
    sent = time.monotonic()
    if how == "shutdown":
        stop = raw.request("shutdown")
    else:
        raw.process.send_signal(getattr(signal, how))
    result = raw.response(run)["result"]
    assert result["status"] == "interrupted"
    assert result["error"]["name"] == "KeyboardInterrupt"
    assert result["stdout"] == "sleeping\n"
    assert error_of(raw.response(queued), -32005)["data"]["reason"] == "shutting_down"
    if how == "shutdown":
        assert raw.response(stop)["result"] == {}
    assert raw.wait_exit(10) == 0
    assert time.monotonic() - sent < 5
    raw.join_output()
    assert raw.bad_lines == []


@pytest.mark.parametrize("how", ["shutdown", "SIGTERM"])
def test_a_shutdown_read_as_the_run_before_it_is_taken_up_stops_that_run(pykernel_bin, tmp_path, how):
    """A run the interpreter thread had taken up and not begun yet when the shutdown (or SIGTERM)
    came was neither queued nor in progress for it: it ran to its end (`ok`, its side effects
    done: 40 in 300 servers with 0-150 us between the two) or, waiting for something, was answered
    only when the server gave up on it after the grace period. Servers 8 at a time, the shutdown
    at a spread of moments after the run: each run is refused (still queued), stopped by the
    shutdown itself, or (SIGTERM before the line was read) never read; none runs on."""
    def spin(microseconds):
        end = time.perf_counter() + microseconds / 1e6
        while time.perf_counter() < end:
            pass

    for batch in range(4):
        servers = [subprocess.Popen([pykernel_bin, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL) for _ in range(8)]
        contexts = []
        for server in servers:  # each one serving, a context of its own warm, before the pair is written
            server.stdin.write(b'{"jsonrpc":"2.0","id":0,"method":"context.create"}\n')
            server.stdin.flush()
        for server in servers:
            contexts.append(json.loads(server.stdout.readline())["result"]["id"])
            server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "code.run",
                                           "params": {"code": "x = 1", "context": contexts[-1]}}).encode() + b"\n")
            server.stdin.flush()
        for server in servers:
            assert json.loads(server.stdout.readline())["result"]["status"] == "ok"
        markers = []
        for index, (server, context) in enumerate(zip(servers, contexts)):
            marker = tmp_path / f"ran-on-{batch}-{index}"
            markers.append(marker)
            run = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "code.run", "params": {"context": context,
                "code": f"import time\ntime.sleep(0.05)\nopen({str(marker)!r}, 'w').write('ran on')"}}).encode() + b"\n"
            server.stdin.write(run)
            server.stdin.flush()
            spin(index * 20)  # 0 to 140 us
            if how == "shutdown":
                server.stdin.write(b'{"jsonrpc":"2.0","id":2,"method":"shutdown"}\n')
                server.stdin.flush()
            else:
                server.send_signal(signal.SIGTERM)
        for server, marker in zip(servers, markers):
            out, _ = server.communicate(timeout=30)
            answers = {message.get("id"): message for message in map(json.loads, out.splitlines())}
            assert server.returncode == 0
            assert not marker.exists(), f"the run went on after the {how}: {answers.get(1)}"
            if how == "shutdown":
                assert answers[2]["result"] == {}
            if 1 not in answers:  # SIGTERM before the line was read: never read, never run
                assert how == "SIGTERM"
                continue
            if "error" in answers[1]:  # still queued when the shutdown came: never started
                assert answers[1]["error"]["data"]["reason"] == "shutting_down", answers[1]
                continue
            result = answers[1]["result"]
            assert result["status"] == "interrupted", result
            assert "did not stop" not in result["error"]["traceback"], result


# ---------------------------------------------------------------- regressions of server bugs found by these tests


def test_notification_run_with_large_output_does_not_wedge_the_interpreter(raw):
    """A code.run sent as a notification has nobody reading its output; once it prints more than
    the engine's 1 MiB output buffer it must not block the interpreter for good."""
    raw.notify("code.run", {"code": "print('x' * 2_000_000)\nbig_done = True"})
    reply = raw.call("code.run", {"code": "print(big_done)"}, timeout=10)
    assert reply["result"]["stdout"] == "True\n"


def test_notification_read_before_end_of_input_is_executed(pykernel_bin, tmp_path):
    marker = tmp_path / "ran"
    line = json.dumps({"jsonrpc": "2.0", "method": "code.run", "params": {
        "code": f"import time\ntime.sleep(0.3)\nopen({str(marker)!r}, 'w').write('ran')"}}).encode() + b"\n"
    completed = subprocess.run([pykernel_bin, "serve"], input=line, capture_output=True, timeout=30)
    assert completed.returncode == 0
    assert completed.stdout == b""
    assert marker.exists(), "the notification's run was dropped at end of input"


def test_shutdown_sent_as_a_notification_shuts_down(raw):
    raw.notify("shutdown")
    assert raw.wait_exit(5) == 0


@pytest.mark.parametrize("how", ["shutdown", "SIGTERM"])
def test_shutdown_does_not_wait_for_code_that_swallows_keyboardinterrupt(raw, how):
    code = ("import time\nwhile True:\n    try:\n        print('started', flush=True)\n        time.sleep(30)\n"
            "    except KeyboardInterrupt:\n        print('caught', flush=True)\n")
    run = raw.request("code.run", {"code": code})
    raw.wait_for(lambda m: m.get("params", {}).get("request_id") == run)
    if how == "shutdown":
        raw.request("shutdown")
    else:
        raw.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    # Interrupted, then after the 2 s grace period answered and exited, whatever the code does.
    reply = raw.response(run, timeout=6)
    assert reply["result"]["status"] == "interrupted", reply
    assert reply["result"]["error"]["name"] == "KeyboardInterrupt"
    assert "caught" in reply["result"]["stdout"]
    assert raw.wait_exit(2) == 0
    assert 1.5 < time.monotonic() - sent < 4.5


# ---------------------------------------------------------------- many contexts


def test_a_thousand_contexts_are_created_listed_used_and_deleted(kernel):
    count = 1000
    created = [kernel.create_context().id for _ in range(count)]
    assert len(set(created)) == count
    listed = [context.id for context in kernel.list_contexts()]
    assert listed == ["default"] + sorted(created)
    for index in range(1, count, 100):
        result = kernel.run_code(f"x = {index}\nprint(x * 2)", context=created[index])
        assert result.stdout == f"{index * 2}\n", result
    for context in created[::2]:
        kernel.delete_context(context)
    assert [context.id for context in kernel.list_contexts()] == ["default"] + sorted(created[1::2])
    assert kernel.run_code("print(x)", context=created[301]).stdout == "301\n"
    for context in created[1::2]:
        kernel.delete_context(context)
    assert [context.id for context in kernel.list_contexts()] == ["default"]


# ---------------------------------------------------------------- large outputs (issue 15)


def _peak_rss(pid, reset=False):
    """VmHWM of a process in bytes; with ``reset`` the peak is first set back to the current RSS."""
    if reset:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))


@pytest.mark.parametrize("how", ["one sys.stdout.write", "a subprocess writing to fd 1"])
def test_32_mb_of_output_streams_whole_in_bounded_notifications_with_a_capped_result(raw, how):
    size = 32 << 20
    code = ("import sys; sys.stdout.write('x' * (32 << 20))" if how == "one sys.stdout.write"
            else "import os; os.system(\"head -c 32M /dev/zero | tr '\\\\0' x\")")
    raw.result("code.run", {"code": "pass"})
    before = _peak_rss(raw.process.pid, reset=True)
    run = raw.request("code.run", {"code": code, "max_output_bytes": 1000})
    result = raw.response(run, timeout=120)["result"]
    outputs = [note["params"] for note in raw.notifications(run) if note["method"] == "code.output"]
    assert all(output["stream"] == "stdout" for output in outputs)
    texts = [output["text"] for output in outputs]
    assert sum(map(len, texts)) == size
    assert set("".join(texts)) == {"x"}
    # Streamed while written, in notifications of at most 1 MiB.
    assert len(texts) >= 32 and max(map(len, texts)) <= 1 << 20, [len(text) for text in texts][:20]
    assert result["status"] == "ok"
    assert result["stdout"] == "x" * 1000
    assert result["stdout_truncated"] is True and result["stdout_omitted_bytes"] == size - 1000
    # The server holds the code's own string (one write) and bounded queues, not copies of the output.
    grown = _peak_rss(raw.process.pid) - before
    allowed = (size if how == "one sys.stdout.write" else 0) + (32 << 20)
    assert grown < allowed, f"peak RSS grew by {grown >> 20} MiB"
    assert raw.bad_lines == []
