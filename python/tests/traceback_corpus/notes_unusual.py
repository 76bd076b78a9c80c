class Unprintable:
    def __str__(self):
        raise RuntimeError("no")


exc = ValueError("with odd notes")
exc.__notes__ = ["ok note", Unprintable(), 42, "trailing newline\n"]
raise exc
