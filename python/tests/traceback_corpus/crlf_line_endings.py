x = 1
y = [1, 2]


def g():
    return y[5]


g()
