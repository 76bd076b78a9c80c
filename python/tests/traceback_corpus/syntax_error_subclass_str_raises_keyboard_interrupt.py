class S(SyntaxError):
    def __str__(self):
        raise KeyboardInterrupt
raise S("msg", ("f.py", 1, 1, "x y", 1, 2))
