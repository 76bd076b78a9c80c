# The signals of a crash and SIGQUIT as the program found them: a shell's background job has
# SIGQUIT ignored, which python3 leaves ignored (a SIGQUIT then does nothing), as any of the others.
import os
import signal

names = ["SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGSEGV"]
print([signal.getsignal(getattr(signal, name)) for name in names], flush=True)
if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
    os.kill(os.getpid(), signal.SIGQUIT)
print("still here")
