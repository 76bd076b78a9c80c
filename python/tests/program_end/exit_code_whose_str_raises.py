# sys.exit with a code that is not a status and whose str() raises: python3 prints what it can
# of it (nothing), then the newline, and exits with 1.
import sys


class Code:
    def __str__(self):
        raise ValueError("no text")


sys.stderr.write("before: ")
sys.exit(Code())
