# inspect.stack() asks every module in sys.modules for __file__: none of the engine's may fail
# (or import something) when asked.
import inspect
import sys


def caller_name():
    return inspect.stack()[1].function


def outer():
    return caller_name()


print(outer())
print(all(isinstance(hasattr(module, "__file__"), bool) for module in list(sys.modules.values())))
print("matplotlib" in sys.modules)
