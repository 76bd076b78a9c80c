def risky():
    raise ValueError("original")


try:
    risky()
except ValueError:
    raise
