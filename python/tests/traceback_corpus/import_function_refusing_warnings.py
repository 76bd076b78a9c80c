# An __import__ that refuses only warnings: python3's printer shows every line and caret (it
# imports no warnings module for a segment that parses without a warning).
import builtins

original = builtins.__import__


def refusing(name, *args, **kwargs):
    if name == "warnings":
        raise ImportError("no warnings here")
    return original(name, *args, **kwargs)


def fail(values):
    return values["missing"] + "tail"


def outer():
    return fail({"key": "x"})


builtins.__import__ = refusing
outer()
