# The program's objects are freed at exit (their __del__ prints) even when a function that
# another module holds (here a warnings hook) keeps the program's globals alive: python3 clears
# every module's globals as it ends, sys's and builtins' last, when nothing prints any more.
import warnings


class Late:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print("freed", self.name)


def show(message, category, filename, lineno, file=None, line=None):
    print("shown:", message)


warnings.showwarning = show
first = Late("first")
_private = Late("_private")
second = Late("second")
warnings.warn("through the hook")
