# os._exit ends the process at once: text flushed before it is out, text still buffered is lost.
import os
import sys

print("flushed", flush=True)
sys.stdout.write("written then flushed\n")
sys.stdout.flush()
print("left in the buffer")
sys.stderr.write("stderr partial")
os._exit(3)
