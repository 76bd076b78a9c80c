# Exceptions nobody can catch (here in __del__) print "Exception ignored in: <object>" with the
# frames' source lines, then the type and value: no chain, no notes. (Each __del__ is an object
# with a repr of its own: a function's repr holds its address.)
import gc


class Finalizer:
    def __init__(self, shown, error):
        self.shown, self.error = shown, error

    def __repr__(self):
        if self.shown is None:
            raise TypeError("no repr")
        return self.shown

    def __call__(self):
        try:
            1 / 0
        except ZeroDivisionError:
            self.error.add_note("a note nobody prints")
            raise self.error


class Empty(Exception):
    pass


class Resource:
    __del__ = Finalizer("<Resource finalizer>", ValueError("cleanup failed"))


class BadRepr:
    __del__ = Finalizer(None, KeyError("in __del__"))


class Silent:
    __del__ = Finalizer("<silent>", Empty())


Resource()
BadRepr()
Silent()
cycle = Resource()
cycle.me = cycle
del cycle
gc.collect()
raise LookupError("last")
