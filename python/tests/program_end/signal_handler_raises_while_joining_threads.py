# A signal handler raising ValueError() while python3 waits for the threads at exit: reported as
# ignored, "ValueError: " with the colon and space of an empty message.
import os
import signal
import threading
import time


def handler(number, frame):
    raise ValueError()


def signal_the_join():
    while threading.main_thread().is_alive():  # until the main thread is done, joining this one
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.3)


signal.signal(signal.SIGUSR1, handler)
threading.Thread(target=signal_the_join).start()
print("main ends")
