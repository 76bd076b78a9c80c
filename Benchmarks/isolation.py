#!/usr/bin/env python3
"""Process contexts (issue 11): creation latency, burst, first result, memory, parallelism.

Usage: python3 Benchmarks/isolation.py [--binary PATH] [--pool-size N] [--venv DIR] [--preload MODULES]
(binary default: .build/release, else debug). Drives `pykernel serve` over its pipes, like any
client; process contexts come from its fork server (or from spawned workers when it cannot run:
kernel.info's `pool.worker_start`, printed first). With `--venv` (e.g. .venv-rich), the time of
`import pandas` in a fresh process context is measured too.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Server:
    def __init__(self, *args):
        self.process = subprocess.Popen([OPTIONS.binary, "serve", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
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

    def workers_reaped(self, pool):
        """Waits until only the pool's workers are alive, and their predecessors were reaped."""
        while self.call("kernel.info")[1]["isolation"]["workers_alive"] > pool:
            time.sleep(0.01)
        time.sleep(0.2)

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


def cpu_seconds(pid, children=False):
    """CPU time (user + system) of a process, or of its reaped children."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # cutime, cstime / utime, stime
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"



def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values):
    return f"median {ms(statistics.median(values))}  p99 {ms(percentile(values, 0.99))}  max {ms(max(values))}"


def fresh_first_runs(server, pool, code, n):
    """Creation, then the first run of `code` in the fresh context: (create, first run, both) each."""
    created, first, both = [], [], []
    for _ in range(n):
        server.pool_ready(pool)
        elapsed, context = server.call("context.create", {"isolation": "process"})
        elapsed_run, result = server.call("code.run", {"context": context["id"], "code": code})
        assert result["status"] == "ok", result
        created.append(elapsed)
        first.append(elapsed_run)
        both.append(elapsed + elapsed_run)
        server.call("context.delete", {"id": context["id"]})
    return created, first, both


def forked_children(pid):
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            children += [int(child) for child in listing.read().split()]
    return children


def memory(args):
    """USS and RSS of idle process contexts (two), in a server of its own with a pool of one: the
    worker a creation takes is then the fork server's only child not bound yet, so its pid is
    known without running code in it. Measured created and never run, after `x = 1`, and after a
    second run `import os; print(os.getpid())` (what compare.py's row after a run does)."""
    server = Server("--pool-size", "1", *args[2:])  # args[:2]: the main server's --pool-size
    server.pool_ready(1)
    fork_server = server.call("kernel.info")[1]["isolation"]["fork_server"]["pid"]
    taken, contexts = [], []
    for _ in range(2):
        server.pool_ready(1)
        pool = set(forked_children(fork_server)) - set(taken)
        assert len(pool) == 1, pool
        contexts.append(server.call("context.create", {"isolation": "process"})[1]["id"])
        taken += pool

    def report(label):
        server.pool_ready(1)
        time.sleep(0.5)
        uss = statistics.mean(uss_kib(p) for p in taken)
        rss = statistics.mean(rss_kib(p) for p in taken)
        print(f"process context, {label}: USS {uss / 1024:.2f} MB ({uss * 1024:,.0f} bytes), RSS {rss / 1024:.1f} MB")

    report("idle (created, never run)")
    for context in contexts:
        server.call("code.run", {"context": context, "code": "x = 1"})
    report("after `x = 1`")
    for context in contexts:
        _, result = server.call("code.run", {"context": context, "code": "import os; print(os.getpid())"})
        assert int(result["stdout"]) in taken
    report("after `x = 1` and `import os; print(os.getpid())`")
    server.close()


def main():
    pool = OPTIONS.pool_size
    args = ["--pool-size", str(pool)]
    if OPTIONS.venv:
        args += ["--venv", OPTIONS.venv]
    if OPTIONS.preload:
        args += ["--preload", OPTIONS.preload]
    server = Server(*args)
    server.pool_ready(pool)
    info = server.call("kernel.info")[1]["isolation"]
    print(f"pykernel serve {' '.join(args)}: workers by {info['pool']['worker_start']}, fork server {info['fork_server']}")

    created, _, first = fresh_first_runs(server, pool, "1", 50)
    print(f"create (pool ready)   {summary(created)}  (n=50)")
    print(f"create + first result {summary(first)}")

    memory(args)
    server.pool_ready(pool)
    contexts = [server.call("context.create", {"isolation": "process"})[1] for _ in range(pool)]

    # Parallelism: one CPU-bound run alone, then two at once in two contexts.
    code = "s = 0\nfor i in range(6_000_000): s += i"
    alone, _ = server.call("code.run", {"context": contexts[0]["id"], "code": code})
    start = time.perf_counter()
    ids = [server.send("code.run", {"context": c["id"], "code": code}) for c in contexts[:2]]
    for id in ids:
        server.wait(id)
    both = time.perf_counter() - start
    print(f"two CPU-bound runs: one alone {alone:.2f} s, two at once {both:.2f} s ({both / alone:.2f}x)")
    # The machine's own ratio at the same time: the same loop in two plain python3 processes.
    plain = [sys.executable, "-c", code]
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

    if OPTIONS.venv:
        _, imported, _ = fresh_first_runs(server, pool, "import pandas", 10)
        print(f"import pandas in a fresh context: {summary(imported)}  (n=10)")

    # Bursts of 100: one creation after the other (each answered before the next is sent), then
    # 100 sent at once; then a first run in each.
    fork_server = info["fork_server"]["pid"] if info["pool"]["worker_start"] == "fork" else None
    for kind in ("one after the other", "sent at once"):
        server.pool_ready(pool)
        if fork_server:
            server.workers_reaped(pool)
            cpu_before = cpu_seconds(fork_server) + cpu_seconds(fork_server, children=True)
        start = time.perf_counter()
        if kind == "sent at once":
            ids = [server.send("context.create", {"isolation": "process"}) for _ in range(100)]
            answers = [server.wait(id) for id in ids]
            latencies = [when - start for when, _ in answers]
            results = [result for _, result in answers]
        else:
            latencies, results = [], []
            for _ in range(100):
                elapsed, result = server.call("context.create", {"isolation": "process"})
                latencies.append(elapsed)
                results.append(result)
        runs = [server.send("code.run", {"context": result["id"], "code": "1"}) for result in results]
        for id in runs:
            server.wait(id)
        ready = time.perf_counter() - start
        print(f"burst of 100 creations, {kind}: {summary(latencies)}; all 100 answered a first run after {ready:.2f} s")
        for result in results:
            server.call("context.delete", {"id": result["id"]})
        if fork_server:
            # The fork server reaps its children: their CPU time (fork to exit: start, warm-up,
            # first run, deletion) is in its cutime/cstime once the deleted workers are reaped.
            server.pool_ready(pool)
            server.workers_reaped(pool)
            cpu = cpu_seconds(fork_server) + cpu_seconds(fork_server, children=True) - cpu_before
            print(f"  CPU per worker (fork server and its children, fork to exit): {ms(cpu / 100)}")
    server.close()


def parse_options():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--binary", default=None)
    parser.add_argument("--pool-size", type=int, default=2)
    parser.add_argument("--venv")
    parser.add_argument("--preload")
    options = parser.parse_args()
    if options.binary is None:
        for kind in ("release", "debug"):
            path = os.path.join(REPO, ".build", kind, "pykernel")
            if os.path.exists(path):
                options.binary = path
                break
        else:
            sys.exit("build pykernel first")
    return options


if __name__ == "__main__":
    OPTIONS = parse_options()
    main()
