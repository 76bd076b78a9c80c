def boom(i):
    raise ValueError(f"item {i}")


errors = []
for i in range(16):
    try:
        boom(i)
    except ValueError as exc:
        errors.append(exc)
raise ExceptionGroup("sixteen", errors)
