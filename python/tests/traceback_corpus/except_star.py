try:
    raise ExceptionGroup("eg", [ValueError(1), TypeError(2), OSError(3)])
except* ValueError:
    pass
except* TypeError as group:
    raise RuntimeError("handling type errors failed")
