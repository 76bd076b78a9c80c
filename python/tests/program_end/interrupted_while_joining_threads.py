# A KeyboardInterrupt while python3 waits for the threads at exit is reported as ignored
# (PyErr_WriteUnraisable): "KeyboardInterrupt: ", with the colon and space of an empty message.
import _thread
import threading
import time


def interrupt_the_join():
    while threading.main_thread().is_alive():  # until the main thread is done, joining this one
        time.sleep(0.01)
    _thread.interrupt_main()
    time.sleep(0.3)


threading.Thread(target=interrupt_the_join).start()
print("main ends")
