# The program's objects freed at exit in python3's order: those bound to names first, in the
# order the names were bound, then the items of lists, tuples and dicts (made by comprehensions,
# loops and displays), each container's last item first. python3's collection before it frees
# the modules reaches them from `__main__`'s globals, which are older than anything the program
# makes (they were freed in the order they were made, before).
class Node:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print(self.name, "freed")


first = Node("first")
made = [Node(f"comprehension {index}") for index in range(3)]
appended = []
for index in range(3):
    appended.append(Node(f"loop {index}"))
keyed = {key: Node(f"dict {key}") for key in "ab"}
pair = (Node("tuple 0"), Node("tuple 1"))
last = Node("last")
print("end")
