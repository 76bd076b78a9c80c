#!/usr/bin/env python3
"""Output throughput of two `pykernel` binaries side by side, in alternating rounds.

    Benchmarks/.venv/bin/python Benchmarks/throughput_ab.py --before OLD/pykernel --after NEW/pykernel

Each round starts a fresh `pykernel serve` of each binary (in alternating order) and plain
`python3`, and measures the rows of compare.py's output sections with compare.py's own code (the
same lean client, which parses every line): 200k printed lines, one 100 MB `sys.stdout.write`,
a subprocess writing 100 MB to fd 1. On a shared machine the load then hits every system alike.
Prints the median MB/s per row and system, the CPU time the server (or plain `python3`) used per
run (user + system, from /proc: on a loaded machine it moves far less than the wall time), the
peak RSS of `pykernel serve`, and the wire bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (its threads included)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


ROWS = {
    "print": (compare.THROUGHPUT_CODE, compare.THROUGHPUT_BYTES),
    "write": (compare.BULK_WRITE_CODE, compare.BULK_BYTES),
    "subprocess": (compare.SUBPROCESS_WRITE_CODE, compare.BULK_BYTES),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the pykernel binary before the change")
    parser.add_argument("--after", required=True, help="the pykernel binary after the change")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per row, system and round (after one warm-up)")
    parser.add_argument("--rows", default="print,write,subprocess", help="of: " + ",".join(ROWS))
    parser.add_argument("--no-python", action="store_true", help="skip plain python3")
    arguments = parser.parse_args()
    rows = arguments.rows.split(",")
    python = compare.system_python()
    log = Path("/tmp/throughput_ab.log")
    systems = [("before", arguments.before), ("after", arguments.after)]
    samples: dict[tuple[str, str], list[float]] = {}
    peaks: dict[tuple[str, str], int] = {}
    wires: dict[tuple[str, str], float] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    try:
        for round_index in range(arguments.rounds):
            order = systems if round_index % 2 == 0 else systems[::-1]
            for name, binary in order:
                for row in rows:
                    code, expected = ROWS[row]
                    client = compare.PyKernelClient(Path(binary), log)
                    try:
                        context = client.create_context()
                        client.call("code.run", {"code": "pass", "context": context})
                        compare.peak_rss(client.pid, reset=True)
                        compare.pykernel_transfers(client, context, code, expected, 0)  # warm-up, outside the CPU count
                        cpu = cpu_seconds(client.pid)
                        times, wire = compare.pykernel_transfers(client, context, code, expected, arguments.runs - 1)
                        cpus.setdefault((row, name), []).append((cpu_seconds(client.pid) - cpu) / arguments.runs)
                        peaks[(row, name)] = max(peaks.get((row, name), 0), compare.peak_rss(client.pid))
                    finally:
                        client.close()
                    samples.setdefault((row, name), []).extend(times)
                    wires[(row, name)] = sum(wire) / len(wire)
            if not arguments.no_python:
                for row in rows:
                    code, expected = ROWS[row]
                    before = os.times()
                    times, rss = compare.python_pipe_transfers(python, code, expected, arguments.runs)
                    after = os.times()
                    cpus.setdefault((row, "python3"), []).append(
                        (after.children_user + after.children_system - before.children_user - before.children_system)
                        / (arguments.runs + 1))
                    samples.setdefault((row, "python3"), []).extend(times)
                    peaks[(row, "python3")] = max(peaks.get((row, "python3"), 0), max(rss))
            compare.log(f"round {round_index + 1} of {arguments.rounds} done")
    finally:
        compare.REAPER.kill_all()
    print(f"| row | system | median MB/s | min–max MB/s | runs | CPU ms per run | peak RSS | wire MB per run |  (load {os.getloadavg()[0]:.1f})")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        expected = ROWS[row][1]
        for name in ("before", "after", "python3"):
            times = samples.get((row, name))
            if not times:
                continue
            wire = wires.get((row, name))
            print(f"| {row} | {name} | {expected / statistics.median(times) / 1e6:.1f} | "
                  f"{expected / max(times) / 1e6:.1f}–{expected / min(times) / 1e6:.1f} | {len(times)} | "
                  f"{statistics.median(cpus[(row, name)]) * 1e3:.0f} | "
                  f"{peaks[(row, name)] / 2**20:.0f} MB | {'' if wire is None else f'{wire / 1e6:.1f}'} |")


if __name__ == "__main__":
    main()
