# No sys.excepthook at all: python3 says it is missing, then prints the traceback itself.
import sys

del sys.excepthook
raise ValueError("deleted hook")
