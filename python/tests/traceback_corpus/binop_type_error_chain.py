def combine(a, b, c):
    return a + b * c - 1


combine(1, "x", None)
