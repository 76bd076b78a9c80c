class E(Exception):
    def __str__(self):
        raise SystemExit(2)
try:
    raise E()
except E as x:
    raise ValueError("outer") from x
