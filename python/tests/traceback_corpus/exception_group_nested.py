def fail(n):
    raise ValueError(f"task {n} failed")


def collect():
    errors = []
    for n in range(2):
        try:
            fail(n)
        except ValueError as exc:
            errors.append(exc)
    inner = ExceptionGroup("inner", errors)
    return ExceptionGroup("outer", [inner, KeyError("k")])


raise collect()
