"""A process-per-context Python worker, the design of Daytona's code interpreter.

One `python3` process per context; requests are JSON lines on stdin, `{"code": ...}` (or
`{"type": "ping"}`); everything goes back as JSON lines on stdout:
`{"type": "stdout"|"stderr", "text"}` as the code writes, `{"type": "error", "name", "value",
"traceback"}`, then `{"type": "control", "text": "completed"|"interrupted"|"ready"}`.
SIGINT interrupts the code in progress (KeyboardInterrupt), as a timeout or an interrupt does there.

Used by compare.py as the "process worker" system; it is a faithful minimum, not a product.
"""

import json
import sys
import traceback

_out = sys.stdout.buffer


def emit(message):
    _out.write(json.dumps(message).encode() + b"\n")
    _out.flush()


class _Stream:
    """Forwards each write as one JSON line, as soon as it is written."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(self, name):
        self.name = name

    def write(self, text):
        if text:
            emit({"type": self.name, "text": text})
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True


def main():
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
            try:
                exec(compile(request["code"], "<cell>", "exec"), namespace)
            except KeyboardInterrupt:
                emit({"type": "control", "text": "interrupted"})
                continue
            except BaseException as error:  # noqa: BLE001 - report everything the code raised
                emit({"type": "error", "name": type(error).__name__, "value": str(error),
                      "traceback": "".join(traceback.format_exception(error))})
            emit({"type": "control", "text": "completed"})
        except KeyboardInterrupt:
            # An interrupt that arrived between runs: nothing to stop.
            continue


if __name__ == "__main__":
    main()
