# 997 chained exceptions: the most python3's C printer prints (one more and it gives up: see
# pykernel_traceback's docstring). It opens a source file a call deeper than it writes, so the
# deepest exception shows its frame without its source line.
def attempt(i, previous):
    try:
        raise ValueError("attempt %d failed" % i)
    except ValueError as exc:
        exc.__cause__ = previous
        return exc


error = None
for i in range(997):
    error = attempt(i, error)
raise error
