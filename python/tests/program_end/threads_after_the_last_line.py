# python3 waits for the threads that are not daemons after the last line; daemons are not waited for.
import threading

previous = threading.main_thread()


def worker(n, before):
    before.join()  # the main thread's join returns once it is done
    print(f"worker {n} after the last line")


for n in range(3):
    previous = threading.Thread(target=worker, args=(n, previous))
    previous.start()


def daemon():
    threading.Event().wait()  # never ends: python3 exits without it
    print("never printed")


threading.Thread(target=daemon, daemon=True).start()
print("last line")
