# A sys.excepthook that raises: python3 prints that error, then the original exception on
# sys.stderr, whose error handler writes a lone surrogate of the message as \udcff.
import sys


def failing_hook(kind, value, traceback):
    raise TypeError("hook failed")


class Undecodable(Exception):
    def __str__(self):
        return "caf\u00e9 \udcff"


sys.excepthook = failing_hook
raise Undecodable()
