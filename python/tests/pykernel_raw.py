"""A ``pykernel serve`` process driven at the byte level, for protocol tests.

Everything the server writes on stdout is read by a thread: each line is kept raw and, when it
parses as JSON, as a message; lines that do not parse are collected in ``bad_lines`` (the
protocol allows none). The server's stderr is collected too.
"""

import json
import subprocess
import threading
import time

DEFAULT_WAIT = 15.0


class RawServer:
    def __init__(self, binary, args=(), env=None, cwd=None, command="serve", preexec_fn=None):
        self.process = subprocess.Popen(
            [binary, command, *args],
            env=env,
            cwd=cwd,
            preexec_fn=preexec_fn,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._condition = threading.Condition()
        self.messages = []  # (arrival time, parsed message)
        self._claimed = set()  # indexes of messages returned by wait_for
        self.bad_lines = []
        self.stdout_closed = False
        self._stderr = bytearray()
        self._ids = 0
        self._stdout_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stdout_thread.start()
        self._stderr_thread.start()

    # -- reading

    def _read_stdout(self):
        for line in iter(self.process.stdout.readline, b""):
            now = time.monotonic()
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            with self._condition:
                if message is None or not line.endswith(b"\n"):
                    self.bad_lines.append(line)
                else:
                    self.messages.append((now, message))
                self._condition.notify_all()
        with self._condition:
            self.stdout_closed = True
            self._condition.notify_all()

    def _read_stderr(self):
        for chunk in iter(lambda: self.process.stderr.read1(65536), b""):
            with self._condition:
                self._stderr.extend(chunk)

    @property
    def stderr(self):
        with self._condition:
            return bytes(self._stderr)

    # -- writing

    def send(self, message):
        """Writes bytes as they are, or a JSON object followed by a newline."""
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def next_id(self):
        self._ids += 1
        return self._ids

    def request(self, method, params=None, id=None):
        """Sends a request; returns its id."""
        if id is None:
            id = self.next_id()
        message = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return id

    def notify(self, method, params=None):
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def close_stdin(self):
        self.process.stdin.close()

    # -- waiting

    def wait_for(self, predicate, timeout=DEFAULT_WAIT, what="a message"):
        """The first unclaimed message matching predicate (claimed now), waiting for it."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for index, (_, message) in enumerate(self.messages):
                    if index not in self._claimed and predicate(message):
                        self._claimed.add(index)
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stdout_closed:  # Closed: no more messages will come.
                    break
                self._condition.wait(remaining)
        raise AssertionError(
            f"no {what} within {timeout} s (server exit status {self.process.poll()}); "
            f"messages so far: {self.summary()}"
        )

    def wait_until(self, check, timeout=DEFAULT_WAIT, what="a condition"):
        """Waits until ``check(messages)`` (every parsed message so far, in order) is true."""
        with self._condition:
            met = self._condition.wait_for(
                lambda: check([m for _, m in self.messages]) or self.stdout_closed, timeout)
            if met and check([m for _, m in self.messages]):
                return
        raise AssertionError(
            f"no {what} within {timeout} s (server exit status {self.process.poll()}); "
            f"messages so far: {self.summary()}"
        )

    def response(self, id, timeout=DEFAULT_WAIT):
        """The response to request ``id``."""
        return self.wait_for(lambda m: is_response(m) and m.get("id") == id, timeout, f"response to id {id!r}")

    def call(self, method, params=None, timeout=DEFAULT_WAIT):
        return self.response(self.request(method, params), timeout)

    def result(self, method, params=None, timeout=DEFAULT_WAIT):
        reply = self.call(method, params, timeout)
        assert "result" in reply, f"{method} failed: {reply}"
        return reply["result"]

    def notifications(self, request_id):
        """Every notification received so far about ``request_id``, in order."""
        with self._condition:
            return [
                m for _, m in self.messages
                if "id" not in m and isinstance(m.get("params"), dict) and m["params"].get("request_id") == request_id
            ]

    def arrival(self, message):
        with self._condition:
            for when, candidate in self.messages:
                if candidate is message:
                    return when
        raise KeyError(message)

    def count(self):
        with self._condition:
            return len(self.messages) + len(self.bad_lines)

    def messages_since(self, start):
        with self._condition:
            return [m for _, m in self.messages[start:]]

    def summary(self, limit=400):
        with self._condition:
            parts = [json.dumps(m)[:limit] for _, m in self.messages[-10:]]
        return "[" + ", ".join(parts) + "]"

    def wait_exit(self, timeout=DEFAULT_WAIT):
        """The exit status; AssertionError if the server is still running after ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"pykernel serve still running {timeout} s later; messages: {self.summary()}")

    def join_output(self, timeout=5.0):
        self._stdout_thread.join(timeout)
        self._stderr_thread.join(timeout)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin,):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self.join_output()


def is_response(message):
    return "id" in message and ("result" in message or "error" in message)
