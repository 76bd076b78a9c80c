# A __del__ that raises as python3 frees the program's objects at exit: reported as ignored,
# with its frames but not their source lines (python3's modules are gone by then, and its
# printer cannot open the file). The same failure during the program shows the lines.
class Finalizer:
    def __init__(self, when):
        self.when = when

    def __repr__(self):
        return f"<finalizer {self.when}>"

    def __call__(self):
        raise ValueError(f"cleanup failed {self.when}")


class During:
    __del__ = Finalizer("during the program")


class AtExit:
    __del__ = Finalizer("at exit")


During()
kept = AtExit()
print("last line")
