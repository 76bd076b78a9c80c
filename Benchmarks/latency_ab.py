"""Side-by-side latency of two (or more) pykernel binaries, in alternating rounds (RESP, issue 15).

Rows: interrupt of `while True: pass` and of `time.sleep(1000)` (from writing `code.interrupt` to
reading the run's `interrupted` response), the `pass` round trip, and 1,000 `code.run` over 100
contexts written without waiting (time to the last response; the server's CPU time).

    python3 Benchmarks/latency_ab.py BEFORE AFTER [--rounds 5] [--reps 100] [--fresh] [--delay 0.003] [--isolation process]

A binary may carry environment variables for its server: `PATH@NAME=VALUE,NAME=VALUE` (the same
executable under several settings). `--fresh` starts a new server for every round (each server
process settles in a fast or a slow mode: rounds of fresh servers sample both), and the `print`
row measures the `print('hi')` round trip. `--isolation process` measures process contexts (every
context the rows use is one).
"""
import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import time

LOOP = "print('go', flush=True)\nwhile True: pass"
SLEEP = "import time\nprint('go', flush=True)\ntime.sleep(1000)"


class Server:
    def __init__(self, binary: str) -> None:
        path, _, settings = binary.partition("@")
        environment = dict(os.environ)
        for setting in filter(None, settings.split(",")):
            name, _, value = setting.partition("=")
            environment[name] = value
        self.process = subprocess.Popen([path, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, env=environment)
        self.fd = self.process.stdout.fileno()
        self.buffer = b""
        self.next_id = 0

    def send_line(self, line: bytes) -> None:
        os.write(self.process.stdin.fileno(), line)

    def request(self, method: str, params: dict) -> int:
        self.next_id += 1
        self.send_line(self.line(self.next_id, method, params))
        return self.next_id

    @staticmethod
    def line(request_id: int, method: str, params: dict) -> bytes:
        return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode() + b"\n"

    def read_message(self) -> dict:
        while b"\n" not in self.buffer:
            select.select([self.fd], [], [], 30)
            data = os.read(self.fd, 1 << 20)
            if not data:
                raise RuntimeError("server closed")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def wait(self, request_id: int, until_output: str | None = None) -> dict:
        while True:
            message = self.read_message()
            if until_output and message.get("method") == "code.output" and until_output in message["params"]["text"]:
                return message
            if message.get("id") == request_id and "method" not in message:
                return message

    def call(self, method: str, params: dict) -> dict:
        return self.wait(self.request(method, params))

    def cpu(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(30)


def interrupt_samples(server: Server, context: str, code: str, reps: int, delay: float = 0.0) -> list[float]:
    samples = []
    for _ in range(reps):
        run = server.request("code.run", {"code": code, "context": context, "timeout": 60})
        server.wait(run, until_output="go")
        if delay:
            time.sleep(delay)
        server.next_id += 1
        line = Server.line(server.next_id, "code.interrupt", {"context": context})
        started = time.perf_counter()
        server.send_line(line)
        response = server.wait(run)
        samples.append(time.perf_counter() - started)
        assert response["result"]["status"] == "interrupted", response
    return samples


def pass_samples(server: Server, context: str, reps: int, code: str = "pass", status: str = "ok") -> list[float]:
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        response = server.call("code.run", {"code": code, "context": context})
        samples.append(time.perf_counter() - started)
        assert response["result"]["status"] == status
    return samples


def pipelined(server: Server, contexts: list[str], runs: int) -> tuple[float, float]:
    lines = []
    first = server.next_id + 1
    for index in range(runs):
        server.next_id += 1
        lines.append(Server.line(server.next_id, "code.run", {"code": "x = 1", "context": contexts[index % len(contexts)]}))
    cpu = server.cpu()
    started = time.perf_counter()
    server.send_line(b"".join(lines))
    pending = set(range(first, server.next_id + 1))
    while pending:
        message = server.read_message()
        if "method" not in message:
            assert "result" in message, message
            pending.discard(message["id"])
    return time.perf_counter() - started, server.cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--rows", default="loop,sleep,pass,pipelined")
    parser.add_argument("--fresh", action="store_true", help="a new server for every round")
    parser.add_argument("--isolation", choices=["namespace", "process"], default="namespace",
                        help="the kind of context every row uses")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds between the run's first output and its interrupt (the processors fall idle meanwhile)")
    arguments = parser.parse_args()
    rows = arguments.rows.split(",")
    results = {binary: {row: [] for row in rows + ["pipelined_cpu"]} for binary in arguments.binaries}
    round_medians = {binary: {row: [] for row in rows} for binary in arguments.binaries}
    servers = {}

    def start(binary: str) -> None:
        server = Server(binary)
        kind = {"isolation": arguments.isolation}
        context = server.call("context.create", kind)["result"]["id"]
        contexts = [server.call("context.create", kind)["result"]["id"] for _ in range(100)]
        server.call("code.run", {"code": "pass", "context": context})
        servers[binary] = (server, context, contexts)

    for binary in arguments.binaries:
        start(binary)
    for round_index in range(arguments.rounds):
        for binary in arguments.binaries:
            if arguments.fresh and round_index > 0:
                servers[binary][0].close()
                start(binary)
            server, context, contexts = servers[binary]
            counts = {row: len(results[binary][row]) for row in rows}
            if "loop" in rows:
                results[binary]["loop"] += interrupt_samples(server, context, LOOP, arguments.reps, arguments.delay)
            if "sleep" in rows:
                results[binary]["sleep"] += interrupt_samples(server, context, SLEEP, arguments.reps, arguments.delay)
            if "pass" in rows:
                results[binary]["pass"] += pass_samples(server, context, arguments.reps * 10)
            if "print" in rows:
                results[binary]["print"] += pass_samples(server, context, arguments.reps * 10, "print('hi')")
            if "error" in rows:
                results[binary]["error"] += pass_samples(server, context, arguments.reps * 10, "1/0", "error")
            if "pipelined" in rows:
                elapsed, cpu = pipelined(server, contexts, 1000)
                results[binary]["pipelined"].append(elapsed)
                results[binary]["pipelined_cpu"].append(cpu)
            for row in rows:
                fresh = results[binary][row][counts[row]:]
                if fresh:
                    round_medians[binary][row].append(statistics.median(fresh))
    for server, _, _ in servers.values():
        server.close()
    for row in rows + (["pipelined_cpu"] if "pipelined" in rows else []):
        print(row)
        for binary in arguments.binaries:
            samples = sorted(results[binary][row])
            if not samples:
                continue
            p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
            unit = 1e3 if row.startswith("pipelined") else 1e6
            name = "ms" if unit == 1e3 else "µs"
            print(f"  {binary:40} median {statistics.median(samples) * unit:8.1f} {name}  p95 {p95 * unit:8.1f} {name}  n={len(samples)}")
            if row in round_medians[binary]:
                print(f"  {'':40} rounds [{', '.join(f'{m * unit:.0f}' for m in round_medians[binary][row])}]")


if __name__ == "__main__":
    sys.exit(main())
