# atexit handlers run last-registered first, with their arguments; one that raises is reported
# and the others still run.
import atexit
import sys


class Failing:
    def __repr__(self):
        return "<the failing handler>"

    def __call__(self):
        raise ValueError("from an atexit handler")


def say(text, *, stream="out"):
    print(text, file=sys.stdout if stream == "out" else sys.stderr)


atexit.register(say, "registered first, runs last")
atexit.register(Failing())
atexit.register(say, "to stderr", stream="err")
atexit.register(say, "registered last, runs first")
unregistered = atexit.register(say, "unregistered")
atexit.unregister(unregistered)
print("main done")
