def dive(n):
    return dive(n + 1)


errors = []
try:
    dive(0)
except RecursionError as exc:
    errors.append(exc)
raise ExceptionGroup("recursion inside", errors)
