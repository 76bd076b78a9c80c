# An __import__ that refuses only io: python3's printer shows no source lines.
import builtins

original = builtins.__import__


def refusing(name, *args, **kwargs):
    if name == "io":
        raise ImportError("no io here")
    return original(name, *args, **kwargs)


def fail(values):
    return values["missing"]


builtins.__import__ = refusing
fail({})
