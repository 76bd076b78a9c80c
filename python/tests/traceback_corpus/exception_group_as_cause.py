try:
    raise ExceptionGroup("first", [ValueError("a"), ValueError("b")])
except ExceptionGroup as group:
    raise RuntimeError("wrapped") from group
