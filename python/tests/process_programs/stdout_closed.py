# sys.stdout.close() closes it: later prints raise ValueError, and the uncaught one ends the program.
import sys

print("before close")
sys.stdout.close()
print(sys.stdout.closed, file=sys.stderr)
try:
    print("after close")
except ValueError as error:
    print("ValueError:", error, file=sys.stderr)
print("uncaught")
