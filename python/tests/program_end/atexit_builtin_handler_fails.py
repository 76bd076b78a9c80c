# An atexit handler that is not Python code (a builtin, a class) and raises: python3 reports it
# without a traceback (no Python frame runs at exit); a Python handler's own frames are shown.
# (The Python handler is an object with a repr of its own: a function's holds its address.)
import atexit


class Handler:
    def __repr__(self):
        return "<python handler>"

    def __call__(self):
        raise KeyError("from Python code")


atexit.register(int, "not a number")
atexit.register(Handler())
atexit.register(print, "handlers run last registered first")
