def check(flag):
    if not flag:
        raise ValueError()


check(False)
