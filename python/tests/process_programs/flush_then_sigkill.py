# A fatal signal ends the process at once: what flush() returned from is on descriptor 1.
import os
import signal

print("flushed", flush=True)
print("left in the buffer")
os.kill(os.getpid(), signal.SIGKILL)
