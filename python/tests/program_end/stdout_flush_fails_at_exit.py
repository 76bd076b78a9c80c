# sys.stdout's flush at exit raises RuntimeError(): python3 reports it as ignored
# ("RuntimeError: ", the colon and space of an empty message) and exits with status 120.
import sys


class Unflushable:
    def __repr__(self):
        return "<Unflushable>"

    def write(self, text):
        return len(text)

    def flush(self):
        raise RuntimeError()


sys.stdout = Unflushable()
print("x")
