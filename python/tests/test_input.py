"""`input()` answered by the client: ``code.run {allow_stdin: true}``, the ``code.input_request``
notification and the ``code.input`` method, through the real ``pykernel serve`` — every case in
namespace contexts and in process contexts (``--isolation process``), which must behave the same."""

import os
import threading
import time

import pytest

from pykernel import PyKernel
from pykernel.errors import InvalidParamsError
from pykernel_raw import RawServer

MODES = {
    "namespace": [],
    "process": ["--isolation", "process", "--pool-size", "1"],
}


@pytest.fixture(params=sorted(MODES))
def mode(request):
    return request.param


@pytest.fixture
def kernel(pykernel_bin, mode):
    client = PyKernel(pykernel_bin, args=MODES[mode])
    try:
        yield client
    finally:
        client.close()
    assert client.returncode == 0, f"pykernel serve exited with status {client.returncode}"


@pytest.fixture
def raw(pykernel_bin, mode):
    server = RawServer(pykernel_bin, MODES[mode])
    try:
        yield server
    finally:
        server.kill()


class Answers:
    """An ``on_input`` callable answering from a list (``EOFError`` raised past its end) and
    recording each (prompt, password) it was asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def __call__(self, prompt, password):
        self.asked.append((prompt, password))
        if not self.answers:
            raise EOFError("no more answers")
        return self.answers.pop(0)


def input_request(raw, run_id):
    return raw.wait_for(
        lambda m: m.get("method") == "code.input_request" and m["params"]["request_id"] == run_id,
        what=f"code.input_request of request {run_id}")["params"]


# ---------------------------------------------------------------- the client's on_input


def test_input_returns_the_answer_and_the_prompt_is_not_echoed(kernel):
    answers = Answers("Ada Lovelace")
    result = kernel.run_code("name = input('Name? ')\nprint('hello', name)", on_input=answers)
    assert result.status == "ok", result.error
    assert result.stdout == "hello Ada Lovelace\n"
    assert answers.asked == [("Name? ", False)]
    assert kernel.run_code("name").results[0].text == "'Ada Lovelace'"


def test_input_is_answered_after_an_output_callback_failed(kernel):
    """A callback that raised is re-raised once the run ends; a later `input()` of that run is
    still answered by `on_input` (it was never answered: the run waited until its timeout)."""
    def failing(message):
        raise ValueError("the host's callback failed")
    started = time.monotonic()
    with pytest.raises(ValueError, match="callback failed"):
        kernel.run_code("print('a', flush=True)\nx = input('q? ')\nprint(x)", on_stdout=failing,
                        on_input=lambda prompt, password: "v", timeout=60)
    assert time.monotonic() - started < 30
    assert kernel.run_code("print(x)").stdout == "v\n"


def test_an_answer_that_is_not_a_str_is_refused_not_sent_as_its_repr(kernel):
    """`on_input` returning b"ab" sent the line "b'ab'" (and 5 sent "5"): the docs say a str.
    The code gets end of file and run_code raises TypeError once the run has ended."""
    code = "try:\n    line = input()\nexcept EOFError:\n    line = 'end of file'"
    for answer, kind in ((b"ab", "bytes"), (5, "int")):
        with pytest.raises(TypeError, match=f"on_input returned {kind}, not str"):
            kernel.run_code(code, on_input=lambda prompt, password: answer)
        assert kernel.run_code("print(line)").stdout == "end of file\n"


def test_getpass_asks_with_password_set(kernel):
    answers = Answers("s3cret")
    result = kernel.run_code("import getpass\nsecret = getpass.getpass('PIN: ')\nprint(len(secret))", on_input=answers)
    assert result.status == "ok", result.error
    assert result.stdout == "6\n" and result.stderr == ""
    assert answers.asked == [("PIN: ", True)]
    answers = Answers("x")
    assert kernel.run_code("getpass.getpass()", on_input=answers).status == "ok"
    assert answers.asked == [("Password: ", True)]


def test_stdin_readline_gets_the_answer_and_a_newline(kernel):
    answers = Answers("first", "")
    result = kernel.run_code("import sys\nprint(repr(sys.stdin.readline()), repr(sys.stdin.readline()))", on_input=answers)
    assert result.stdout == "'first\\n' '\\n'\n"
    assert answers.asked == [("", False), ("", False)]


def test_a_loop_reads_three_lines(kernel):
    answers = Answers("1", "2", "3")
    result = kernel.run_code("total = 0\nfor _ in range(3):\n    total += int(input('n: '))\nprint(total)", on_input=answers)
    assert result.stdout == "6\n"
    assert answers.asked == [("n: ", False)] * 3


def test_iterating_and_reading_stdin_stop_at_end_of_file(kernel):
    answers = Answers("a", "b")
    result = kernel.run_code("import sys\nprint([line for line in sys.stdin])", on_input=answers)
    assert result.stdout == "['a\\n', 'b\\n']\n", result.error
    answers = Answers("x", "y")
    result = kernel.run_code("import sys\nprint(repr(sys.stdin.read()))", on_input=answers)
    assert result.stdout == "'x\\ny\\n'\n"
    assert len(answers.asked) == 3  # the third read got end of file


def test_stdin_buffer_reads_the_same_lines_as_utf8_bytes(kernel):
    answers = Answers("\u00e9t\u00e9", "abc", "second")
    code = ("import sys\nb = sys.stdin.buffer\n"
            "print(b.readline(), b.read(2), b.readline(), b.read(), sys.stdin.buffer is b, b.fileno() == 0)")
    result = kernel.run_code(code, on_input=answers)
    assert result.status == "ok", result.error
    assert result.stdout == "b'\\xc3\\xa9t\\xc3\\xa9\\n' b'ab' b'c\\n' b'second\\n' True True\n"
    assert answers.asked == [("", False)] * 4  # read() asks until the end of file


def test_end_of_file_raises_eoferror_in_input(kernel):
    result = kernel.run_code("input('more? ')", on_input=Answers())
    assert result.status == "error"
    assert result.error.name == "EOFError" and result.error.value == "EOF when reading a line"
    assert result.error.traceback.splitlines()[-2].strip() == "input('more? ')"


def test_python_threads_asking_at_once_are_served_one_after_the_other(kernel):
    asked = []
    lock = threading.Lock()

    def answer(prompt, password):
        with lock:
            asked.append(prompt)
        return prompt.upper()

    code = (
        "import threading\nanswers = {}\n"
        "def ask(name):\n    answers[name] = input(name)\n"
        "threads = [threading.Thread(target=ask, args=(f't{i}',)) for i in range(3)]\n"
        "for t in threads: t.start()\n"
        "ask('main')\n"
        "for t in threads: t.join()\n"
        "print(sorted(answers.items()))"
    )
    result = kernel.run_code(code, on_input=answer)
    assert result.status == "ok", result.error
    assert result.stdout == "[('main', 'MAIN'), ('t0', 'T0'), ('t1', 'T1'), ('t2', 'T2')]\n"
    assert sorted(asked) == ["main", "t0", "t1", "t2"]


def test_without_allow_stdin_input_fails_at_once_as_before(kernel):
    started = time.monotonic()
    result = kernel.run_code("input('q? ')")
    assert time.monotonic() - started < 5
    assert result.status == "error" and result.error.name == "EOFError"
    assert result.error.value.startswith("input() is not supported here")
    assert result.stdout == "q? "
    result = kernel.run_code("import sys\nsys.stdin.readline()")
    assert result.error.name == "EOFError"


def test_what_a_partial_read_left_of_an_answer_is_never_read_by_another_run(kernel):
    """`sys.stdin.read(2)` (or its `buffer`) leaves the rest of the answer: a later run — of this
    context without `allow_stdin`, of this context with it, of another context — does not read it
    (it read `cret-of-A` without asking)."""
    answers = Answers("secret-of-A", "bytes-of-A")
    result = kernel.run_code("import sys\nprint(sys.stdin.read(2), sys.stdin.buffer.read(0))\n"
                             "print(sys.stdin.readline(), end='')\nprint(sys.stdin.buffer.read(2))", on_input=answers)
    assert result.stdout == "se b''\ncret-of-A\nb'by'\n", result.error
    for code in ("import sys\nsys.stdin.readline()", "import sys\nsys.stdin.buffer.readline()", "input()"):
        result = kernel.run_code(code)
        assert result.status == "error" and result.error.name == "EOFError", (code, result.stdout)
    fresh = Answers("fresh")
    assert kernel.run_code("print(input())", on_input=fresh).stdout == "fresh\n"
    assert fresh.asked == [("", False)]
    kernel.run_code("import sys\nsys.stdin.read(1)", on_input=Answers("left-over"))
    other = kernel.create_context()
    result = kernel.run_code("import sys\nprint(repr(sys.stdin.read()))", context=other, on_input=Answers())
    assert result.stdout == "''\n"  # asked, and the client's end of file: nothing of the other run's


def test_input_reads_what_a_partial_read_left_of_the_line_first(kernel):
    """As python3 with `abcd` and `next` on stdin: `read(2)` then `input()` gives 'ab', 'cd'.
    Its prompt is not written to stdout, as no prompt is (it was, this one only)."""
    answers = Answers("abcd", "x")
    code = "import sys\na = sys.stdin.read(2)\nb = input('p> ')\nprint(repr(a), repr(b))\nprint(repr(input('second> ')))"
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "'ab' 'cd'\n'x'\n", result.error
    assert answers.asked == [("", False), ("second> ", False)]


def test_input_writes_its_prompt_to_a_stdout_the_code_put_in_place(kernel):
    """As python3: `input()` under `redirect_stdout(StringIO())` writes its prompt there (it stayed
    empty); the request still carries it. Without `sys.stdout`, python3's RuntimeError."""
    answers = Answers("a", "b")
    code = ("import contextlib, io, sys\nf = io.StringIO()\nwith contextlib.redirect_stdout(f):\n    x = input('Q? ')\n"
            "print(repr(f.getvalue()), x)\nsys.stdin.read(1)\nwith contextlib.redirect_stdout(f):\n    input('R? ')\nprint(repr(f.getvalue()))")
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "'Q? ' a\n'Q? R? '\n", result.error
    assert answers.asked == [("Q? ", False), ("", False)]
    result = kernel.run_code("import sys\ndel sys.stdout\ninput('Q? ')", on_input=Answers("a"))
    assert (result.error.name, result.error.value) == ("RuntimeError", "input(): lost sys.stdout")


def test_stdin_buffer_peeks_as_python3s_buffered_reader_on_a_pipe(kernel):
    """`sys.stdin.buffer.peek()` (an AttributeError before): the next line, asked for once and left
    for the reads after it, as python3's with `abc` on a pipe."""
    answers = Answers("abc")
    code = "import sys\nb = sys.stdin.buffer\nprint(b.peek(1), b.peek(), b.read(2), repr(sys.stdin.readline()))"
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "b'abc\\n' b'abc\\n' b'ab' 'c\\n'\n", result.error
    assert answers.asked == [("", False)]


def test_a_read_of_text_goes_on_where_a_read_of_bytes_stopped(kernel):
    """As python3's `TextIOWrapper` over its `BufferedReader`, answered a line at a time: what a
    read of `sys.stdin.buffer` left is read by `sys.stdin` and `input()` first (part of a
    character too), while a read of bytes after one of text gets the next line (the text took the
    whole line, and reads the rest of it afterwards)."""
    answers = Answers("abcd", "e", "f")
    code = "import sys\nprint(repr(sys.stdin.buffer.read(2)), repr(sys.stdin.readline()), repr(input()))"
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "b'ab' 'cd\\n' 'e'\n", result.error
    assert len(answers.asked) == 2
    answers = Answers("abcd", "e")
    code = "import sys\nprint(repr(sys.stdin.buffer.readline(2)), repr(input()), repr(sys.stdin.read()))"
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "b'ab' 'cd' 'e\\n'\n", result.error
    answers = Answers("\u00e9t\u00e9", "x")
    code = ("import sys\nb = bytearray(3)\n"
            "print(sys.stdin.buffer.read(1), ascii(sys.stdin.readline()), sys.stdin.buffer.readinto(b), b,"
            " ascii(sys.stdin.read(1)))")
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "b'\\xc3' '\\udca9t\\xe9\\n' 2 bytearray(b'x\\n\\x00') ''\n", result.error
    answers = Answers("abcd", "e", "f")
    code = "import sys\nprint(repr(sys.stdin.read(2)), repr(sys.stdin.buffer.read(2)), repr(sys.stdin.readline()))"
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "'ab' b'e\\n' 'cd\\n'\n", result.error


def test_a_reader_wrapping_stdin_buffer_gets_each_line_as_it_is_answered(kernel):
    """`read1` returns one answer's line, as python3's on a pipe returns what one read gets; a
    `TextIOWrapper` over `sys.stdin.buffer` asked again and again until the client's end of file."""
    answers = Answers("héllo", "second")
    code = ("import io, sys\nprint(sys.stdin.buffer.read1(100))\n"
            "sys.stdin = io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8')\nprint(input())")
    result = kernel.run_code(code, on_input=answers)
    assert result.stdout == "b'h\\xc3\\xa9llo\\n'\nsecond\n", result.error
    assert len(answers.asked) == 2


def test_getpass_without_allow_stdin_fails_at_once_on_a_server_started_from_a_terminal(pykernel_bin, mode):
    """CPython's getpass asks the controlling terminal: the server's, which is not the client's.
    Without `allow_stdin` it fails as `input()` does (it waited for the server's terminal)."""
    main, secondary = os.openpty()
    terminal = os.ttyname(secondary)

    def with_a_controlling_terminal():
        os.setsid()
        os.close(os.open(terminal, os.O_RDWR))  # the first terminal a session leader opens

    server = RawServer(pykernel_bin, MODES[mode], preexec_fn=with_a_controlling_terminal)
    try:
        started = time.monotonic()
        result = server.call("code.run", {"code": "import getpass\ngetpass.getpass('PIN: ')", "timeout": 10})["result"]
        assert time.monotonic() - started < 5
        assert result["status"] == "error" and result["error"]["name"] == "EOFError", result
        assert result["stderr"] == "PIN: "
        os.set_blocking(main, False)
        with pytest.raises(BlockingIOError):
            os.read(main, 100)  # nothing was written to the server's terminal
    finally:
        server.kill()
        os.close(main)
        os.close(secondary)


def test_a_stdin_the_code_installed_is_read_instead_of_asking(kernel):
    answers = Answers("never")
    result = kernel.run_code("import io, sys\nsys.stdin = io.StringIO('given\\n')\nprint(input())", on_input=answers)
    assert result.stdout == "given\n" and answers.asked == []


# ---------------------------------------------------------------- the protocol


def test_code_input_request_and_answer_on_the_wire(raw):
    run_id = raw.request("code.run", {"code": "print('before', flush=True)\nx = input('Name? ')\nprint(x)", "allow_stdin": True})
    request = input_request(raw, run_id)
    assert request == {"request_id": run_id, "prompt": "Name? ", "password": False}
    outputs = [m["params"]["text"] for m in raw.notifications(run_id) if m["method"] == "code.output"]
    assert outputs == ["before\n"]  # in order: the output written before the request came first
    assert raw.result("code.input", {"request_id": run_id, "value": "Ada"}) == {}
    result = raw.response(run_id)["result"]
    assert result["status"] == "ok" and result["stdout"] == "before\nAda\n"


def test_the_answer_to_code_input_comes_before_the_runs_response(raw):
    """Code that ends right after reading the answer: the `{}` of `code.input` is written before
    the run's response. In a process context it came after it 6 to 9 times in 40 (the worker's
    `{}` went to the client through a task, the run's response from the thread that reads the
    worker); in a namespace context, and so in the worker too, about once in 80 (the `{}` waited
    in the request reader's batch while the interpreter thread the answer woke wrote the run's
    response ahead of it)."""
    for attempt in range(60):
        run_id = raw.request("code.run", {"code": "x = input()\nprint(x)", "allow_stdin": True})
        input_request(raw, run_id)
        start = raw.count()
        answer_id = raw.request("code.input", {"request_id": run_id, "value": f"v{attempt}"})
        assert raw.response(run_id)["result"]["stdout"] == f"v{attempt}\n"
        assert raw.response(answer_id)["result"] == {}
        order = [m["id"] for m in raw.messages_since(start) if "id" in m and m["id"] in (run_id, answer_id)]
        assert order == [answer_id, run_id], f"attempt {attempt}: the responses came in the order {order}"


def test_a_prompt_written_to_the_descriptor_comes_before_the_request(raw):
    """`os.write(1, ...)` (or C code, a subprocess) then `input()`: the prompt's output comes
    first, as the code wrote it (the request came first 12 times in 15)."""
    for _ in range(5):
        run_id = raw.request("code.run", {"code": "import os\nos.write(1, b'Q: ')\nv = input()", "allow_stdin": True})
        input_request(raw, run_id)
        outputs = [m["params"]["text"] for m in raw.notifications(run_id) if m["method"] == "code.output"]
        assert outputs == ["Q: "]
        assert raw.result("code.input", {"request_id": run_id, "value": "a"}) == {}
        assert raw.response(run_id)["result"]["stdout"] == "Q: "


def test_eof_on_the_wire(raw):
    run_id = raw.request("code.run", {"code": "import sys\nprint(repr(sys.stdin.readline()))", "allow_stdin": True})
    input_request(raw, run_id)
    assert raw.result("code.input", {"request_id": run_id, "eof": True}) == {}
    assert raw.response(run_id)["result"]["stdout"] == "''\n"


def test_code_input_for_a_run_not_waiting_is_invalid_params(raw):
    reply = raw.call("code.input", {"request_id": 12345, "value": "x"})
    assert reply["error"]["code"] == -32602
    assert reply["error"]["data"] == {"reason": "not_waiting_for_input", "field": "request_id"}
    run_id = raw.request("code.run", {"code": "input()", "allow_stdin": True})
    input_request(raw, run_id)
    assert raw.result("code.input", {"request_id": run_id, "value": "once"}) == {}
    raw.response(run_id)
    reply = raw.call("code.input", {"request_id": run_id, "value": "twice"})
    assert reply["error"]["data"]["reason"] == "not_waiting_for_input"


def test_a_second_code_input_is_refused_naming_the_clients_request_id(raw):
    """A second answer sent at once, while the run ends: a process context's worker refused it
    naming its own request id ("No run started by request 1 ..."), never seen by the client."""
    for attempt in range(10):
        run_id = f"run-{attempt}"
        raw.request("code.run", {"code": "print(input())", "allow_stdin": True}, id=run_id)
        input_request(raw, run_id)
        answers = [raw.request("code.input", {"request_id": run_id, "value": value}) for value in ("once", "twice")]
        # One is taken (in a process context not always the first: both are forwarded at once).
        replies = [raw.response(answer) for answer in answers]
        [taken] = [value for value, reply in zip(("once", "twice"), replies) if "result" in reply]
        [error] = [reply["error"] for reply in replies if "error" in reply]
        assert error["data"] == {"reason": "not_waiting_for_input", "field": "request_id"}
        assert error["message"] in {
            "The run is not waiting for this input: it was answered already, or the run was stopped or has ended.",
            f'No run started by request "{run_id}" is waiting for input (it never asked, was answered already, or has ended).',
        }, error
        assert raw.response(run_id)["result"]["stdout"] == taken + "\n"


def test_code_input_params_are_checked(raw):
    for params, field in [({}, "request_id"), ({"request_id": 1}, "value"), ({"request_id": 1, "value": 3}, "value"),
                          ({"request_id": 1, "value": "x", "eof": True}, "value"), ({"request_id": ["r"], "value": "x"}, "request_id")]:
        reply = raw.call("code.input", params)
        assert reply["error"]["code"] == -32602, params
        assert reply["error"]["data"]["field"] == field, params
    reply = raw.call("code.input", {"request_id": ["r"], "value": "x"})
    assert reply["error"]["message"].endswith("got array.")


def test_a_run_whose_request_id_is_null_is_answered_by_request_id_null(raw):
    """JSON-RPC allows the id null: its run's input request says `request_id: null`, and
    `code.input` with `request_id: null` answers it (it was refused as missing)."""
    raw.send({"jsonrpc": "2.0", "id": None, "method": "code.run", "params": {"code": "print(input() * 2)", "allow_stdin": True}})
    assert input_request(raw, None) == {"request_id": None, "prompt": "", "password": False}
    assert raw.result("code.input", {"request_id": None, "value": "ab"}) == {}
    reply = raw.wait_for(lambda m: "method" not in m and m.get("id", 0) is None, what="the response with id null")
    assert reply["result"]["stdout"] == "abab\n"


def test_interrupt_while_waiting_reports_interrupted(raw):
    context = raw.result("context.create")["id"]
    run_id = raw.request("code.run", {"code": "x = 1\nx = input('wait: ')", "context": context, "allow_stdin": True})
    input_request(raw, run_id)
    started = time.monotonic()
    assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
    result = raw.response(run_id)["result"]
    assert time.monotonic() - started < 1.5
    assert result["status"] == "interrupted" and result["error"]["name"] == "KeyboardInterrupt"
    assert "x = input('wait: ')" in result["error"]["traceback"]
    reply = raw.call("code.input", {"request_id": run_id, "value": "late"})
    assert reply["error"]["data"]["reason"] == "not_waiting_for_input"
    assert raw.result("code.run", {"code": "x", "context": context})["results"][0]["data"]["text/plain"] == "1"


def test_an_answer_written_right_after_the_interrupt_is_refused(raw):
    """An interrupt withdraws the open request at once: a `code.input` written right after it
    (before the run has unwound) was accepted (`{}`) and its value dropped. Then, code that
    catches the interrupt and asks again gets its new request answered."""
    context = raw.result("context.create")["id"]
    for attempt in range(10):
        run_id = raw.request("code.run", {"code": "v = input('p')", "context": context, "allow_stdin": True})
        input_request(raw, run_id)
        interrupt_id = raw.request("code.interrupt", {"context": context})
        reply = raw.call("code.input", {"request_id": run_id, "value": "race"})
        assert raw.response(interrupt_id)["result"] == {"interrupted": True}
        assert raw.response(run_id)["result"]["status"] == "interrupted"
        assert reply.get("error", {}).get("data", {}).get("reason") == "not_waiting_for_input", (attempt, reply)
    code = "try:\n    input('first')\nexcept KeyboardInterrupt:\n    print('again', input('second'))"
    run_id = raw.request("code.run", {"code": code, "context": context, "allow_stdin": True})
    input_request(raw, run_id)
    assert raw.result("code.interrupt", {"context": context}) == {"interrupted": True}
    raw.wait_for(lambda m: m.get("method") == "code.input_request" and m["params"]["request_id"] == run_id
                 and m["params"]["prompt"] == "second", what="the second request")
    assert raw.result("code.input", {"request_id": run_id, "value": "yes"}) == {}
    assert raw.response(run_id)["result"]["stdout"] == "again yes\n"


ALARM_AROUND_INPUT = """\
import signal, sys, threading, os
class TooSlow(Exception):
    pass
def too_slow(*_):
    raise TooSlow('too slow')
signal.signal(signal.SIGALRM, too_slow)
signal.{arm}
try:
    answer = {read}
except TooSlow:
    answer = 'timed out'
signal.alarm(0)
print(answer)
"""


@pytest.mark.parametrize("arm, read", [("alarm(1)", "input('quick? ')"),
                                       ("setitimer(signal.ITIMER_REAL, 0.3)", "sys.stdin.readline()")])
def test_a_signal_handler_that_raises_ends_the_wait_for_input(raw, arm, read):
    """python3's `input()` with a timeout (`signal.alarm`, a handler that raises): the handler runs
    while the code waits for the client, and its exception comes out of the read. It ran only
    after an answer came, which it then lost: the run waited for the client or its timeout. The
    withdrawn request refuses a late answer, as after an interrupt."""
    run_id = raw.request("code.run", {"code": ALARM_AROUND_INPUT.format(arm=arm, read=read), "allow_stdin": True, "timeout": 30})
    input_request(raw, run_id)
    result = raw.response(run_id, timeout=15)["result"]
    assert result["status"] == "ok", result["error"]
    assert result["stdout"] == "timed out\n"
    reply = raw.call("code.input", {"request_id": run_id, "value": "late"})
    assert reply["error"]["data"]["reason"] == "not_waiting_for_input"


def test_sigint_the_code_sends_itself_from_a_thread_interrupts_input(raw):
    code = ("import os, signal, threading\n"
            "threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()\n"
            "try:\n    input('?')\nexcept KeyboardInterrupt:\n    print('interrupted')")
    run_id = raw.request("code.run", {"code": code, "allow_stdin": True, "timeout": 30})
    input_request(raw, run_id)
    result = raw.response(run_id, timeout=15)["result"]
    assert result["status"] == "ok" and result["stdout"] == "interrupted\n"


def test_a_signal_handler_that_returns_leaves_the_same_request_waiting(raw):
    """A handler that returns runs while the code waits (before the answer: its output comes
    first), and the wait goes on for the same request: no second `code.input_request`, and the
    answer that comes later is what `input()` returns."""
    code = ("import os, signal, threading\n"
            "hits = []\n"
            "def note(*_):\n    hits.append(1)\n    print('handled', flush=True)\n"
            "signal.signal(signal.SIGUSR1, note)\n"
            "threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1)).start()\n"
            "print(input('name? '), hits)")
    run_id = raw.request("code.run", {"code": code, "allow_stdin": True, "timeout": 30})
    input_request(raw, run_id)
    raw.wait_for(lambda m: m.get("method") == "code.output" and m["params"]["request_id"] == run_id
                 and m["params"]["text"] == "handled\n", what="the handler's output", timeout=15)
    assert raw.result("code.input", {"request_id": run_id, "value": "Ada"}) == {}
    result = raw.response(run_id)["result"]
    assert result["status"] == "ok", result["error"]
    assert result["stdout"] == "handled\nAda [1]\n"
    requests = [m for m in raw.notifications(run_id) if m["method"] == "code.input_request"]
    assert len(requests) == 1


def test_timeout_while_waiting_reports_timeout(raw):
    result = raw.result("code.run", {"code": "input()", "allow_stdin": True, "timeout": 0.5})
    assert result["status"] == "timeout" and result["error"]["name"] == "TimeoutError"
    assert result["duration"] < 2.0  # stopped at its deadline, not after the grace period
    assert raw.result("code.run", {"code": "print('next')"})["stdout"] == "next\n"


def test_deleting_the_context_while_waiting_interrupts_the_run(raw):
    context = raw.result("context.create")["id"]
    run_id = raw.request("code.run", {"code": "input()", "context": context, "allow_stdin": True})
    input_request(raw, run_id)
    assert raw.result("context.delete", {"id": context}) == {}
    result = raw.response(run_id)["result"]
    assert result["status"] == "interrupted"
    assert raw.result("code.run", {"code": "print('alive')"})["stdout"] == "alive\n"


def test_a_run_sent_as_a_notification_gets_end_of_file(raw):
    raw.notify("code.run", {"code": "try:\n    input()\nexcept EOFError:\n    done = True", "allow_stdin": True})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = raw.result("code.run", {"code": "print(globals().get('done'))"})
        if result["stdout"] == "True\n":
            break
    assert result["stdout"] == "True\n"


def test_the_end_of_the_clients_input_answers_every_wait_end_of_file(raw):
    """Nobody can answer once the client's input has ended: a run waiting for input then, and
    each read it makes later, gets end of file (the server finished it and exited; it waited
    for the run's timeout before, forever without one)."""
    run_id = raw.request("code.run", {
        "code": "import sys\nprint(repr(sys.stdin.readline()))\nprint(repr(sys.stdin.read()))\ninput('more? ')",
        "allow_stdin": True, "timeout": 0})
    assert input_request(raw, run_id) == {"request_id": run_id, "prompt": "", "password": False}
    raw.close_stdin()
    reply = raw.response(run_id, timeout=30)
    assert reply["result"]["stdout"] == "''\n''\n"
    assert reply["result"]["error"]["name"] == "EOFError"
    assert reply["result"]["error"]["traceback"].endswith("EOFError: EOF when reading a line\n")
    assert raw.wait_exit() == 0


# What code sees of sys.stdin, checked against python3.11 reading a pipe (the same lines).
STDIN_PROBE = r'''
import copy, pickle, sys
s = sys.stdin
def show(label, f):
    try:
        print(label, repr(f()))
    except BaseException as e:
        print(label, type(e).__name__, e)
show("repr", lambda: repr(s))
show("type", lambda: (type(s), type(s).__name__, type(s).__qualname__, type(s).__module__))
for name in ("name", "mode", "encoding", "errors", "newlines", "line_buffering", "write_through", "closed"):
    show(name, lambda: getattr(s, name))
show("buffer", lambda: (repr(s.buffer), s.buffer.name, s.buffer.mode))
show("abilities", lambda: (s.readable(), s.writable(), s.seekable(), s.isatty()))
show("write", lambda: s.write("x"))
show("writelines", lambda: s.writelines(["x"]))
show("tell", s.tell)
show("seek", lambda: s.seek(0))
show("truncate", lambda: s.truncate())
show("buffer's tell", s.buffer.tell)
show("buffer's seek", lambda: s.buffer.seek(0))
show("buffer's seek from 7", lambda: s.buffer.seek(0, 7))
for name, value in (("name", "x"), ("encoding", "x"), ("errors", "x"), ("line_buffering", True), ("buffer", None)):
    show("set " + name, lambda: setattr(s, name, value))
show("del buffer", lambda: delattr(s, "buffer"))
show("set mode", lambda: setattr(s, "mode", "rt"))
show("repr of mode", lambda: (repr(s), s.mode))
del s.mode
show("pickle", lambda: pickle.dumps(s))
show("pickle 0", lambda: pickle.dumps(s, 0))
show("copy", lambda: copy.copy(s))
show("missing", lambda: s.nope)
for arguments in ({"encoding": 1}, {"errors": 1}, {"newline": 1}, {"newline": "x"}, {"encoding": "nope"},
                  {"encoding": 1, "errors": 2}):
    show("reconfigure %r" % (arguments,), lambda: s.reconfigure(**arguments))
show("buffering", lambda: (s.reconfigure(line_buffering=1, write_through=1), s.line_buffering, s.write_through))
show("kept", lambda: (s.reconfigure(line_buffering=None), s.line_buffering, s.write_through))
show("encoding only", lambda: (s.reconfigure(encoding="latin-1"), s.encoding, s.errors))
show("errors only", lambda: (s.reconfigure(errors="replace"), s.encoding, s.errors))
show("latin-1 line", s.readline)
show("after a line", lambda: s.reconfigure(encoding="utf-8", errors="surrogateescape"))
show("buffering after a line", lambda: s.reconfigure(line_buffering=False, write_through=False))
show("newline after a line", lambda: s.reconfigure(newline=None))
show("the rest", s.read)
show("after a read of all", lambda: (s.reconfigure(encoding="utf-8", errors="strict"), s.errors))
show("input", input)
show("after input", lambda: s.reconfigure(errors="surrogateescape"))
'''


def test_sys_stdin_passes_for_python3s_stream_on_a_pipe(kernel, tmp_path):
    import os
    import subprocess
    program = tmp_path / "probe.py"
    program.write_text(STDIN_PROBE)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    theirs = subprocess.run(["/usr/bin/python3.11", str(program)], input="\u00e9t\u00e9\nsecond\nthird\n", capture_output=True,
                            text=True, env=environment, timeout=60)
    result = kernel.run_code(STDIN_PROBE, on_input=Answers("\u00e9t\u00e9", "second", "third"))
    assert result.error is None, result.error
    assert result.stdout == theirs.stdout


def test_an_answer_read_while_the_run_waits_is_taken_though_its_context_is_deleted_right_after(raw):
    """A process context's worker, killed by a deletion read right after the answer, had not
    acknowledged it yet: the answer was refused `not_waiting_for_input` ("it never asked, was
    answered already, or has ended": 24 to 35 of 40), where a namespace context's run takes it.
    Both now answer `{}`; the deletion stops the run."""
    for attempt in range(10):
        context = raw.result("context.create")["id"]
        run_id = raw.request("code.run", {"code": "answer = input('? ')\nimport time\ntime.sleep(30)",
                                          "context": context, "allow_stdin": True})
        input_request(raw, run_id)
        answer = raw.request("code.input", {"request_id": run_id, "value": f"v{attempt}"})
        deletion = raw.request("context.delete", {"id": context})
        answered = raw.response(answer)
        assert answered.get("result") == {}, answered
        assert raw.response(deletion)["result"] == {}
        assert raw.response(run_id)["result"]["status"] == "interrupted"
