class Odd(Exception):
    pass


Odd.__module__ = None
Odd.__qualname__ = "Renamed.Odd"
raise Odd("module is None")
