# A function that threading holds (here threading.excepthook) keeps the program's globals alive
# past python3's last collection (the interpreter keeps threading for its shutdown): the
# objects' __del__ print nothing, unlike a hook of another module (globals_kept_by_a_hook.py).
import threading


class Late:
    def __del__(self):
        print("never printed")


def hook(args):
    print("hooked:", args.exc_type.__name__)


threading.excepthook = hook
kept = Late()
worker = threading.Thread(target=lambda: 1 / 0)
worker.start()
worker.join()
