class E(Exception):
    def __str__(self):
        raise SystemExit("from str")
raise ExceptionGroup("g", [E()])
