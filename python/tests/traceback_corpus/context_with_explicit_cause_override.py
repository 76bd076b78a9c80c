try:
    try:
        1 / 0
    except ZeroDivisionError:
        raise KeyError("inner")
except KeyError as exc:
    err = OSError("outer")
    err.__suppress_context__ = False
    raise err from None
