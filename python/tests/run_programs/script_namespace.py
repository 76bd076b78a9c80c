# What python3 puts in a script's namespace and in sys for it (the test runs it as ./script_namespace.py).
import sys

print(__name__, __file__, __cached__, __spec__, __package__)
print(type(__loader__).__name__, __loader__.name, __loader__.path == __file__)
print(__loader__.get_source("__main__").splitlines()[0])
print(sorted(name for name in globals() if name.startswith("__")))
print(sys.orig_argv[1:], sys.orig_argv[0] == sys.executable, sys.argv)
