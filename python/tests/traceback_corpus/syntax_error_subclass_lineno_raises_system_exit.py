class S(SyntaxError):
    @property
    def lineno(self):
        raise SystemExit(2)
raise S("msg", ("f.py", 1, 1, "x", 1, 2))
