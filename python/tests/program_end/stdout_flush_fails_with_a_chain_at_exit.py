# An exception ignored at exit is printed as PyErr_WriteUnraisable prints it: its own traceback
# and line, not the exception it was raised from, nor its notes.
import sys


class Unflushable:
    def __repr__(self):
        return "<Unflushable>"

    def write(self, text):
        return len(text)

    def flush(self):
        try:
            1 / 0
        except ZeroDivisionError as error:
            failure = RuntimeError("could not flush")
            failure.add_note("a note python3 does not print here")
            raise failure from error


sys.stdout = Unflushable()
print("x")
