# A program that replaced sys.stdout and sys.stderr: python3 puts the original streams back
# before it frees the program's objects, so what their __del__ prints is seen, after the
# uncaught exception (printed on the replacement: lost).
import io
import sys


class Late:
    def __del__(self):
        print("freed at exit, on the original stdout")
        print("and stderr", file=sys.stderr)


kept = Late()
sys.stdout = io.StringIO()
sys.stderr = io.StringIO()
print("into the replacement")
1 / 0
