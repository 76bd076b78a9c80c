# A chain longer than the printer's Python recursion allowed (~330): python3's C printer follows
# __cause__ down to the first attempt, as far as its recursion limit (~1000).
def attempt(i, previous):
    try:
        raise ValueError("attempt %d failed" % i)
    except ValueError as exc:
        exc.__cause__ = previous
        return exc


error = None
for i in range(500):
    error = attempt(i, error)
raise error
