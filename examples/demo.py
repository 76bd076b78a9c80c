# A tour of what `pykernel run` does like python3: output of Python and of subprocesses in the
# order written, then the exact traceback CPython prints (exit status 1).
import os
import subprocess
import sys

print("Hello from PyKernel running", sys.version.split()[0])
subprocess.run(["echo", "a line from a subprocess, captured in order"])
os.write(1, b"a line written to file descriptor 1\n")
data = {"users": [{"name": "Alice", "age": 30}, {"name": "Bob", "age": 25}]}
for user in data["users"]:
    print(f"{user['name']} is {user['age']} years old")
print("Average age:", sum(u["age"] for u in data["users"]) / len(data["users"]))
print("and now an error:", file=sys.stderr)
ages = [user["age"] for user in data["users"]]
print(ages[5])
