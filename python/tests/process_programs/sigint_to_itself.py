# SIGINT raises KeyboardInterrupt where the code is; the program's handler, SIG_IGN and
# default_int_handler take over when set; an uncaught KeyboardInterrupt ends with SIGINT.
import os
import signal

print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)
try:
    os.kill(os.getpid(), signal.SIGINT)
    print("not reached")
except KeyboardInterrupt:
    print("KeyboardInterrupt caught")


def handler(signum, frame):
    print("handler", signum, frame.f_code.co_name)


print(signal.signal(signal.SIGINT, handler) is signal.default_int_handler)
os.kill(os.getpid(), signal.SIGINT)
signal.raise_signal(signal.SIGINT)
signal.signal(signal.SIGINT, signal.SIG_IGN)
os.kill(os.getpid(), signal.SIGINT)
print("ignored")
signal.signal(signal.SIGINT, signal.default_int_handler)
print("last line", flush=True)
os.kill(os.getpid(), signal.SIGINT)
print("not reached either")
