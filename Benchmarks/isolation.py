#!/usr/bin/env python3
"""Process contexts (issue 11): creation latency, burst, first result, memory, parallelism.

Usage: python3 Benchmarks/isolation.py [path/to/pykernel]   (default: .build/release, else debug)
Drives `pykernel serve --pool-size N` over its pipes, like any client.
"""

import json
import os
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary():
    if len(sys.argv) > 1:
        return sys.argv[1]
    for kind in ("release", "debug"):
        path = os.path.join(REPO, ".build", kind, "pykernel")
        if os.path.exists(path):
            return path
    sys.exit("build pykernel first")


class Server:
    def __init__(self, *args):
        self.process = subprocess.Popen([binary(), "serve", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.next = 0
        self.replies = {}
        self.condition = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            message = json.loads(line)
            if "id" in message:
                with self.condition:
                    self.replies[message["id"]] = (time.perf_counter(), message)
                    self.condition.notify_all()

    def send(self, method, params=None):
        self.next += 1
        line = json.dumps({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params or {}}) + "\n"
        self.process.stdin.write(line.encode())
        self.process.stdin.flush()
        return self.next

    def wait(self, id):
        with self.condition:
            while id not in self.replies:
                self.condition.wait()
            when, message = self.replies.pop(id)
        if "error" in message:
            raise RuntimeError(message["error"])
        return when, message["result"]

    def call(self, method, params=None):
        start = time.perf_counter()
        when, result = self.wait(self.send(method, params))
        return when - start, result

    def pool_ready(self, size):
        while self.call("kernel.info")[1]["isolation"]["pool"]["ready"] < size:
            time.sleep(0.01)

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def uss_kib(pid):
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    return total


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def main():
    pool = 2
    server = Server("--pool-size", str(pool))
    server.pool_ready(pool)
    created, first = [], []
    for _ in range(30):
        server.pool_ready(pool)
        elapsed, context = server.call("context.create", {"isolation": "process"})
        created.append(elapsed)
        elapsed_run, _ = server.call("code.run", {"context": context["id"], "code": "1"})
        first.append(elapsed + elapsed_run)
        server.call("context.delete", {"id": context["id"]})
    created.sort()
    first.sort()
    print(f"create (pool ready)   median {ms(statistics.median(created))}  p99 {ms(created[-1])}  (n=30)")
    print(f"create + first result median {ms(statistics.median(first))}  p99 {ms(first[-1])}")

    # Memory of idle workers: a context after one small run.
    server.pool_ready(pool)
    contexts = [server.call("context.create", {"isolation": "process"})[1] for _ in range(pool)]
    pids = []
    for context in contexts:
        _, result = server.call("code.run", {"context": context["id"], "code": "import os\nprint(os.getpid())"})
        pids.append(int(result["stdout"]))
    time.sleep(0.5)
    print(f"idle worker: USS {statistics.mean(uss_kib(p) for p in pids) / 1024:.1f} MB, "
          f"RSS {statistics.mean(rss_kib(p) for p in pids) / 1024:.1f} MB")

    # Parallelism: one CPU-bound run alone, then two at once in two contexts.
    code = "s = 0\nfor i in range(6_000_000): s += i"
    alone, _ = server.call("code.run", {"context": contexts[0]["id"], "code": code})
    start = time.perf_counter()
    ids = [server.send("code.run", {"context": c["id"], "code": code}) for c in contexts]
    for id in ids:
        server.wait(id)
    both = time.perf_counter() - start
    print(f"two CPU-bound runs: one alone {alone:.2f} s, two at once {both:.2f} s ({both / alone:.2f}x)")
    # The machine's own ratio at the same time: the same loop in two plain python3 processes.
    plain = [sys.executable, "-c", code.replace("\n", "\n")]
    start = time.perf_counter()
    subprocess.run(plain, check=True)
    one = time.perf_counter() - start
    start = time.perf_counter()
    processes = [subprocess.Popen(plain) for _ in range(2)]
    for process in processes:
        process.wait()
    two = time.perf_counter() - start
    print(f"  baseline, two plain python3 processes: one {one:.2f} s, two at once {two:.2f} s ({two / one:.2f}x)")
    for context in contexts:
        server.call("context.delete", {"id": context["id"]})

    # Burst: 100 creations sent at once, then a first run in each.
    server.pool_ready(pool)
    start = time.perf_counter()
    ids = [server.send("context.create", {"isolation": "process"}) for _ in range(100)]
    answers = [server.wait(id) for id in ids]
    latencies = sorted(when - start for when, _ in answers)
    runs = [server.send("code.run", {"context": result["id"], "code": "1"}) for _, result in answers]
    for id in runs:
        server.wait(id)
    ready = time.perf_counter() - start
    print(f"burst of 100 creations: last answered after {ms(latencies[-1])} (median {ms(statistics.median(latencies))}); "
          f"all 100 answered a first run after {ready:.2f} s")
    for _, result in answers:
        server.call("context.delete", {"id": result["id"]})
    server.close()


if __name__ == "__main__":
    main()
