# A function that sys holds (here sys.excepthook) keeps the program's globals alive until
# python3 clears sys itself, when nothing prints any more: the objects' __del__ print nothing.
import sys


class Late:
    def __del__(self):
        print("never printed")


def hook(kind, value, traceback):
    print("hooked:", kind.__name__, value)


sys.excepthook = hook
kept = Late()
raise LookupError("at the end")
