# stdout (buffered on a pipe) and stderr (line-buffered) written in turns, partial lines too:
# with 2>&1 the bytes reach the pipe in python3's order.
import sys

for i in range(5):
    print("out", i)
    print("err", i, file=sys.stderr)
    sys.stderr.write("partial ")
sys.stdout.buffer.write(b"bytes on stdout\n")
print("text after bytes", end="")
sys.stderr.write("last stderr\n")
print(" and no newline at the end", end="")
