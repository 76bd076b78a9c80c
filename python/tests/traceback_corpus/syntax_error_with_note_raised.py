def check(line):
    err = SyntaxError("unexpected token", ("config.ini", 3, 5, "key = = value\n", 3, 8))
    err.add_note("notes of SyntaxError are not printed by CPython 3.11")
    raise err


check("key = = value")
