def step(n):
    if n % 2:
        raise OSError(f"io {n}")
    raise ValueError(f"value {n}")


def run_all():
    errors = []
    for n in range(3):
        try:
            step(n)
        except Exception as exc:
            errors.append(exc)
    try:
        raise ExceptionGroup("batch", errors)
    except ExceptionGroup as group:
        raise BaseExceptionGroup("run", [group, KeyboardInterrupt()])


run_all()
