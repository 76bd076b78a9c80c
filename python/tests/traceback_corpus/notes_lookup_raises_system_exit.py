class E(Exception):
    def __getattribute__(self, n):
        if n == "__notes__":
            raise SystemExit(9)
        return super().__getattribute__(n)
raise E("ga")
