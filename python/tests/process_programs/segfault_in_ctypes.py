# A crash in native code: status -SIGSEGV, nothing printed but what was flushed.
import ctypes

print("before the crash", flush=True)
print("left in the buffer")
ctypes.string_at(0)
