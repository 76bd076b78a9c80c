def numbers():
    yield 1
    yield 2


gen = numbers()
next(gen)
gen.throw(ValueError("thrown into generator"))
