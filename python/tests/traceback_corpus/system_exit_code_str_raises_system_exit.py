# reference: excepthook
class C:
    def __str__(self):
        raise SystemExit(7)
raise SystemExit(C())
