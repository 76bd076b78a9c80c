class E(Exception):
    def __getattribute__(self, n):
        raise AttributeError(n)
raise E("ga")
