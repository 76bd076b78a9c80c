import sys

sys.tracebacklimit = 0


def f():
    raise RuntimeError("no traceback shown")


f()
