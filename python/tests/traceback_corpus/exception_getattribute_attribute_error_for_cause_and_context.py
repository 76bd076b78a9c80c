class E(Exception):
    def __getattribute__(self, n):
        if n in ("__cause__", "__context__"):
            raise AttributeError(n)
        return super().__getattribute__(n)
try:
    1/0
except Exception:
    raise E("ga")
