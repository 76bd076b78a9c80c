# At exit python3 frees the program's objects: their __del__ run (globals still bound) and files
# left open are flushed and closed.
class Resource:
    def __init__(self, name):
        self.name = name

    def __del__(self):
        print(f"freeing {self.name}, limit still {limit}")


limit = 5
second = Resource("b")
first = Resource("a")
_private = Resource("c")
log = open("written_at_exit.txt", "w")
log.write("buffered, never flushed by the program\n")
print("main done")
