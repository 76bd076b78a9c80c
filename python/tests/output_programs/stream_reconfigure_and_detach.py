# What scripts do to python3's standard streams: reconfigure them, wrap or detach the buffer.
import io
import sys

sys.stdout.reconfigure(encoding="utf-8")
print("reconfigured é")
sys.stdout.reconfigure(line_buffering=True, write_through=True)
sys.stderr.reconfigure(errors="replace")
print(sys.stdout.encoding, sys.stdout.errors, sys.stdout.line_buffering, sys.stdout.write_through)
print(sys.stdout.mode, sys.stdout.buffer.mode)
try:
    sys.stdout.reconfigure(newline="x")
except ValueError as error:
    print("ValueError:", error)
wrapped = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
wrapped.write("wrapped ü\n")
wrapped.flush()
sys.stdout.buffer.write(b"raw bytes\n")
sys.stdout.buffer.flush()
sys.stdout.reconfigure(line_buffering=False)
sys.stdout = io.TextIOWrapper(sys.stdout.detach(), encoding="utf-8", line_buffering=True)
print("after detach")
