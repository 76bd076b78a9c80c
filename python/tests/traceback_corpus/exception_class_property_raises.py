class E(Exception):
    @property
    def __class__(self):
        raise RuntimeError("no class")
raise E("x")
