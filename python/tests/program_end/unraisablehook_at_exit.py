# What python3 ignores at exit goes to sys.unraisablehook, as every PyErr_WriteUnraisable: one
# the program set is called, with the object it was ignored in.
import sys


def hook(unraisable):
    print("hook:", unraisable.exc_type.__name__, repr(unraisable.exc_value), unraisable.err_msg,
          type(unraisable.object).__name__, file=sys.__stderr__)


class Unflushable:
    def __repr__(self):
        return "<Unflushable>"

    def write(self, text):
        return len(text)

    def flush(self):
        raise RuntimeError("flush")


sys.unraisablehook = hook
sys.stdout = Unflushable()
print("x")
