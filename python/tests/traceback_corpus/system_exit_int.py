# reference: excepthook
import sys


def finish(code):
    sys.exit(code)


finish(3)
