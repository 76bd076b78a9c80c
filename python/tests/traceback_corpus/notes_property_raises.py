class E(Exception):
    @property
    def __notes__(self):
        raise RuntimeError("n")
raise E("ga")
