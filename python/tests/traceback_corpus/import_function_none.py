# python3's printer imports io through builtins.__import__ before each source line: with it
# broken it shows no source lines, and the message still (no quote in the raise: the engine's
# native printer would take it).
import builtins

message = "broken import"


def fail():
    raise RuntimeError(message)


builtins.__import__ = None
fail()
