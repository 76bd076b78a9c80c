parse = lambda text: int(text) * 2
values = list(map(parse, ["1", "2", "x"]))
