# A sys.unraisablehook that raises as python3 reports an exception ignored at exit: python3
# prints the hook's exception instead ("Exception ignored in sys.unraisablehook: <the hook>").
import sys


class Hook:
    def __repr__(self):
        return "<the hook>"

    def __call__(self, unraisable):
        raise OSError("the hook fails")


class Unflushable:
    def __repr__(self):
        return "<Unflushable>"

    def write(self, text):
        return len(text)

    def flush(self):
        raise RuntimeError("flush")


sys.unraisablehook = Hook()
sys.stdout = Unflushable()
print("x")
