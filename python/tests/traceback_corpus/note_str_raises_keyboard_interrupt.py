class S(str):
    def __str__(self):
        raise KeyboardInterrupt
e = ValueError("x"); e.__notes__ = [S("a")]
raise e
