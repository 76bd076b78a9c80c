def pick(flag):
    return 1 / 0


values = [pick(1if True else 2)]
