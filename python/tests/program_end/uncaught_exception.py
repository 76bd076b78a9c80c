# An uncaught exception's traceback comes first; then threads, atexit handlers and finalizers.
import atexit


class Noisy:
    def __del__(self):
        print("finalizer after the traceback")


atexit.register(print, "atexit after the traceback")
keep = Noisy()
print("about to fail")
1 / 0
