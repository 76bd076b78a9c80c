# An exception a thread does not catch: threading.excepthook prints it with the frames' source
# lines (CPython's own printer reads them from files only, and a cell is none), then the main
# thread's own error.
import threading


def worker(values):
    return [10 / value for value in values]


thread = threading.Thread(target=worker, args=([1, 0],), name="worker-1")
thread.start()
thread.join()
lookup = threading.Thread(target=lambda: {}["missing"], name="lambda-thread")
lookup.start()
lookup.join()
exiting = threading.Thread(target=lambda: exit(3))  # SystemExit in a thread: nothing printed
exiting.start()
exiting.join()
raise RuntimeError("after the threads")
