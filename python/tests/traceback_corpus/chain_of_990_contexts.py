# 990 exceptions each raised while handling the one before (__context__), printed from the first.
error = None
for i in range(990):
    try:
        try:
            raise error or KeyError("first")
        except BaseException:
            raise ValueError(i)
    except ValueError as exc:
        error = exc
raise error
