# Reference cycles already unreachable at exit are finalized by python3's collection before it
# frees the modules (PyGC_Collect in Py_FinalizeEx): in the order their objects were made, before
# the globals' objects, and before a cycle a global holds.
class Member:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print("deleted", self.name)


kept = Member("global")
held = Member("cycle held by a global")
held.itself = held
first, second = Member("a"), Member("b")
first.other, second.other = second, first
del first, second
print("end")
