# A sys.excepthook that raises: python3 reports both the hook's error and the original exception.
import sys


def hook(kind, value, traceback):
    raise ValueError("the hook failed")


sys.excepthook = hook
1 / 0
