# sys.exit with a status still waits for threads and runs atexit handlers, after the exit itself.
import atexit
import sys
import threading


def late():
    threading.main_thread().join()
    print("thread after sys.exit")


threading.Thread(target=late).start()
atexit.register(print, "atexit after sys.exit")
print("exiting with 3")
sys.exit(3)
