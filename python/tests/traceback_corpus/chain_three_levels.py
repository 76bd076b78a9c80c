def level_one():
    raise ValueError("one")


def level_two():
    try:
        level_one()
    except ValueError as exc:
        raise TypeError("two") from exc


def level_three():
    try:
        level_two()
    except TypeError:
        raise RuntimeError("three")


level_three()
