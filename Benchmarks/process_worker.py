"""A process-per-context Python worker, the design of Daytona's code interpreter.

One `python3` process per context; requests are JSON lines on stdin, `{"code": ...}` (or
`{"type": "ping"}`); everything goes back as JSON lines on stdout:
`{"type": "stdout"|"stderr", "text"}` as the code writes (line by line), `{"type": "error", "name", "value",
"traceback"}`, then `{"type": "control", "text": "completed"|"interrupted"|"ready"}`.
SIGINT interrupts the code in progress (KeyboardInterrupt), as a timeout or an interrupt does there.

Used by compare.py as the "process worker" system; it is a faithful minimum, not a product.
"""

import json
import signal
import sys
import traceback

_out = sys.stdout.buffer


def emit(message):
    _out.write(json.dumps(message).encode() + b"\n")
    _out.flush()


class _Stream:
    """Line-buffered like Daytona's emitter: a JSON line once a write contains a newline or 1 KiB is pending."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, name):
        self.name = name
        self.pending = []
        self.pending_length = 0

    def write(self, text):
        if not text:
            return 0
        self.pending.append(text)
        self.pending_length += len(text)
        if "\n" in text or self.pending_length >= 1024:
            self.flush()
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self.pending:
            text = "".join(self.pending)
            self.pending.clear()
            self.pending_length = 0
            emit({"type": self.name, "text": text})

    def isatty(self):
        return False

    def writable(self):
        return True


def main():
    signal.signal(signal.SIGINT, signal.default_int_handler)  # interrupts, even if started with SIGINT ignored
    namespace = {"__name__": "__main__", "__doc__": None, "__package__": None, "__builtins__": __builtins__}
    requests = sys.stdin.buffer
    sys.stdout = _Stream("stdout")
    sys.stderr = _Stream("stderr")
    while True:
        try:
            line = requests.readline()
            if not line:
                return
            request = json.loads(line)
            if request.get("type") == "ping":
                emit({"type": "control", "text": "ready"})
                continue
            ending = "completed"
            try:
                exec(compile(request["code"], "<cell>", "exec"), namespace)
            except KeyboardInterrupt:
                ending = "interrupted"
            except BaseException as error:  # noqa: BLE001 - report everything the code raised
                sys.stdout.flush()
                emit({"type": "error", "name": type(error).__name__, "value": str(error),
                      "traceback": "".join(traceback.format_exception(error))})
            sys.stdout.flush()
            sys.stderr.flush()
            emit({"type": "control", "text": ending})
        except KeyboardInterrupt:
            # An interrupt that arrived between runs: nothing to stop.
            continue


if __name__ == "__main__":
    main()
