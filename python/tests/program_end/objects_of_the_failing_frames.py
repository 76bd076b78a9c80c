# The objects of the frames an uncaught exception went through live until the end of the
# program (python3 keeps the exception in sys.last_value): freed after the threads that are not
# daemons and the atexit handlers, not as soon as the traceback is printed.
import atexit
import threading


class Late:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print("freed", self.name)


def after_main():
    threading.main_thread().join()
    print("thread after the main thread")


def main():
    local = Late("a local of the failing frame")
    threading.Thread(target=after_main).start()
    atexit.register(print, "atexit handler")
    raise RuntimeError("uncaught")


main()
