# With the collector disabled, python3 does not collect before it frees the modules: cycles
# already unreachable are finalized by its last collection, after the globals' objects.
import gc


class Member:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print("deleted", self.name)


gc.disable()
kept = Member("global")
first, second = Member("a"), Member("b")
first.other, second.other = second, first
del first, second
print("end")
