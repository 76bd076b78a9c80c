# An uncaught exception goes to the program's sys.excepthook, as in python3 (SystemExit does not).
import sys


def hook(kind, value, traceback):
    print("custom hook:", kind.__name__, value, traceback.tb_lineno)


sys.excepthook = hook
print("before")
raise RuntimeError("uncaught")
