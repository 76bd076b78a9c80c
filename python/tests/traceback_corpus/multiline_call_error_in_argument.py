def pair(a, b):
    return (a, b)


result = pair(
    1,
    int("not a number"),
)
