#!/usr/bin/env python3
"""PyKernel side by side with a Jupyter kernel and a process-per-context worker, in one run.

    bash Benchmarks/run            # full run (about 5 minutes on 2 cores, after the first build)
    bash Benchmarks/run --quick    # about a minute, fewer repetitions

Stage 1 (any python3, standard library only): builds `pykernel` in release mode, creates the
private virtualenv Benchmarks/.venv (jupyter_client, ipykernel, matplotlib) with /usr/bin/python3.11,
then re-runs this script with the virtualenv's python for stage 2, the measurements.

Every system runs the same Python (/usr/bin/python3.11, the one pykernel embeds), with the same
clean environment (no PYTHON* variables). Results: a Markdown table on stdout,
Benchmarks/results/latest.{json,md}, Benchmarks/results/ratios.png, and copies of the Markdown and
the chart in Benchmarks/latest/ (committed, shown by the README).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import fcntl
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "Benchmarks"
VENV = BENCH / ".venv"
RESULTS = BENCH / "results"
LATEST = BENCH / "latest"
WORKER = BENCH / "process_worker.py"
VENV_PACKAGES = ["jupyter_client", "ipykernel", "matplotlib", "pandas", "mcp>=2.3,<3"]
STAGE_VARIABLE = "PYKERNEL_BENCH_STAGE"

# 200,000 lines of `print(i)`: the bytes every system must deliver to its client.
THROUGHPUT_LINES = 200_000
THROUGHPUT_CODE = f"for i in range({THROUGHPUT_LINES:_}): print(i)"
THROUGHPUT_BYTES = sum(len(str(i)) + 1 for i in range(THROUGHPUT_LINES))
# 100 MiB of output at once: one write of a 100 MiB string, and a subprocess writing to fd 1.
BULK_BYTES = 100 << 20
BULK_WRITE_CODE = "import sys; sys.stdout.write('x' * (100 << 20))"
SUBPROCESS_WRITE_CODE = "import os; os.system(\"head -c 100M /dev/zero | tr '\\\\0' x\")"
FIRST_RESULT_CODE = 'import json; print(json.dumps({"a": 1}))'
FIRST_RESULT_TEXT = '{"a": 1}'
# Error round trip: an exception in a warm context, answered with its full record (traceback).
ERROR_CODE = "1/0"
# The timeout rows: each run is stopped by its timeout (the server's own for pykernel; a timer of the
# client followed by an interrupt for the worker and Jupyter, which have none of their own).
TIMEOUT_SECONDS = 0.05
TIMEOUT_CODES = {"loop": "while True: pass", "sleep": "import time\ntime.sleep(1000)"}
# A run that waits as long as the timeout and ends by itself: the timeout rows' floor on the host
# (after 50 ms idle, waking the server's threads and the client costs more than when busy).
IDLE_CODE = "import time; time.sleep(0.05)"

INTERRUPT_CODES = {
    "loop": "print('go', flush=True)\nwhile True: pass",
    "sleep": "import time\nprint('go', flush=True)\ntime.sleep(1000)",
}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def system_python() -> str:
    if os.path.exists("/usr/bin/python3.11"):
        return "/usr/bin/python3.11"
    found = shutil.which("python3.11")
    if not found:
        sys.exit("compare.py needs python3.11 (Debian: apt-get install -y python3.11 python3.11-venv)")
    return found


def clean_environment() -> dict[str, str]:
    """The harness's environment without PYTHON* and virtualenv variables (PYTHONUNBUFFERED alone
    would turn every print of the plain-python rows into a write system call)."""
    return {name: value for name, value in os.environ.items()
            if not name.startswith("PYTHON") and name not in ("VIRTUAL_ENV", STAGE_VARIABLE)}


# ---------------------------------------------------------------------------------------------
# Stage 1: build and set up
# ---------------------------------------------------------------------------------------------

def build_pykernel(scratch_path: str | None) -> Path:
    command = ["swift", "build", "-c", "release", "--product", "pykernel"]
    if scratch_path:
        command += ["--scratch-path", scratch_path]
    log("building pykernel (release): " + " ".join(command))
    started = time.monotonic()
    subprocess.run(command, cwd=ROOT, check=True, stdout=sys.stderr, timeout=3600)
    bin_dir = subprocess.run(command + ["--show-bin-path"], cwd=ROOT, check=True, text=True,
                             capture_output=True, timeout=600).stdout.strip().splitlines()[-1]
    log(f"built in {time.monotonic() - started:.0f} s")
    return Path(bin_dir) / "pykernel"


def ensure_virtualenv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {VENV.relative_to(ROOT)} with {system_python()}")
        result = subprocess.run([system_python(), "-m", "venv", str(VENV)], stdout=sys.stderr, timeout=600)
        if result.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            log("venv failed; installing python3.11-venv")
            subprocess.run(["apt-get", "install", "-y", "python3.11-venv"], check=True, stdout=sys.stderr, timeout=1200)
            subprocess.run([system_python(), "-m", "venv", str(VENV)], check=True, stdout=sys.stderr, timeout=600)
    check = subprocess.run([str(python), "-c", "import jupyter_client, ipykernel, matplotlib, pandas, mcp"],
                           capture_output=True, timeout=300, env=clean_environment())
    if check.returncode != 0:
        log("installing " + ", ".join(VENV_PACKAGES) + " into the virtualenv (PyPI)")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *VENV_PACKAGES],
                       check=True, stdout=sys.stderr, timeout=1800, env=clean_environment())
    return python


def bootstrap(arguments: argparse.Namespace) -> None:
    binary = Path(arguments.pykernel) if arguments.pykernel else build_pykernel(arguments.scratch_path)
    if not os.access(binary, os.X_OK):
        sys.exit(f"no pykernel executable at {binary}")
    python = ensure_virtualenv()
    environment = dict(os.environ, **{STAGE_VARIABLE: "measure"})
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    forwarded = ["--quick"] if arguments.quick else []
    if arguments.wait_idle:
        forwarded.append(f"--wait-idle={arguments.wait_idle}")
    if arguments.library is not None:
        forwarded.append("--library" if arguments.library else "--no-library")
    if arguments.library_scratch_path:
        forwarded.append(f"--library-scratch-path={Path(arguments.library_scratch_path).resolve()}")
    if arguments.budget:
        forwarded.append(f"--budget={arguments.budget}")
    forwarded += [f"--only={word}" for word in arguments.only or []]
    os.execve(str(python), [str(python), str(Path(__file__).resolve()), *forwarded, f"--pykernel={binary.resolve()}"], environment)


# ---------------------------------------------------------------------------------------------
# Stage 2: processes, and killing all of them whatever happens
# ---------------------------------------------------------------------------------------------

class Reaper:
    """Every process this run starts, killed at the end, on failure and on Ctrl-C."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []
        self.kernels: list = []  # jupyter_client KernelManagers

    def spawn(self, command: list[str], **options) -> subprocess.Popen:
        process = subprocess.Popen(command, env=options.pop("env", clean_environment()), **options)
        self.processes.append(process)
        return process

    def forget(self, process: subprocess.Popen) -> None:
        if process in self.processes:
            self.processes.remove(process)

    def kill(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            try:
                process.kill()
            except ProcessLookupError:
                pass
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream:
                try:
                    stream.close()
                except OSError:
                    pass
        self.forget(process)

    def kill_kernel(self, manager) -> None:
        pid = kernel_pid(manager)
        if pid:
            for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
                try:
                    kill()
                    break
                except (ProcessLookupError, PermissionError, OSError):
                    continue
        try:
            manager.cleanup_resources()
        except Exception:  # noqa: BLE001 - best effort at the end
            pass
        if manager in self.kernels:
            self.kernels.remove(manager)

    def kill_all(self) -> None:
        for manager in list(self.kernels):
            self.kill_kernel(manager)
        for process in list(self.processes):
            self.kill(process)


REAPER = Reaper()


def kernel_pid(manager) -> int | None:
    provisioner = getattr(manager, "provisioner", None)
    process = getattr(provisioner, "process", None)
    return getattr(process, "pid", None)


class Deadline(Exception):
    pass


def wait_deadline(seconds: float) -> float:
    return time.monotonic() + seconds


# ---------------------------------------------------------------------------------------------
# Statistics and rows
# ---------------------------------------------------------------------------------------------

def percentile(sorted_values: list[float], fraction: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    position = fraction * (len(sorted_values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


def summary(samples: list[float]) -> dict:
    values = sorted(samples)
    return {"median": percentile(values, 0.5), "p95": percentile(values, 0.95), "p99": percentile(values, 0.99),
            "min": values[0], "max": values[-1], "reps": len(values)}


class Results:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def row(self, key: str, title: str, kind: str, note: str = "", short: str = "") -> dict:
        """kind: "time" (seconds, lower is better), "throughput" (seconds per transfer of `bytes`),
        "memory" (bytes, lower is better)."""
        row = {"key": key, "title": title, "short": short or title, "kind": kind, "note": note, "entries": []}
        self.rows.append(row)
        return row

    @staticmethod
    def add(row: dict, system: str, label: str, samples: list[float], reference: bool = False,
            bytes_moved: int | None = None, detail: str = "") -> dict:
        entry = {"system": system, "label": label, "reference": reference, "detail": detail, **summary(samples)}
        if row["kind"] == "throughput":
            entry["bytes"] = bytes_moved
            # Throughput percentiles are those of the time: p95 is the 95th slowest transfer.
            entry["mb_per_s"] = {name: bytes_moved / entry[name] / 1e6 for name in ("median", "p95", "p99")}
        row["entries"].append(entry)
        return entry

    def compute_ratios(self) -> None:
        """advantage: how many times better pykernel is (faster, more MB/s, less memory)."""
        for row in self.rows:
            base = next((entry for entry in row["entries"] if entry["system"] == "pykernel" and not entry["reference"]), None)
            for entry in row["entries"]:
                if base is None or entry is base or entry["reference"] or entry["system"] in ("pykernel", "library"):
                    entry["advantage"] = None
                    continue
                # Time and memory: alternative / pykernel. Throughput is bytes/time, so the same ratio of times.
                entry["advantage"] = entry["median"] / base["median"] if base["median"] > 0 else None


# ---------------------------------------------------------------------------------------------
# pykernel serve: a lean JSON-RPC client over the pipes
# ---------------------------------------------------------------------------------------------

class LineChannel:
    """Newline-delimited messages over a child's pipes, every wait bounded by a deadline."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.write_fd = process.stdin.fileno()
        self.read_fd = process.stdout.fileno()
        # Room for a batch of pipelined requests (1,000 runs: ~120 KB) in the pipe to the process,
        # as a client that writes them at once would want: written in one call, not in pieces as
        # the process reads them (each piece a wake-up on both sides).
        fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        # Lines are split as the Python client's `_lines` splits them: each byte is searched for a
        # newline once, and a line is copied once (joined only when it spans reads). A 100 MB
        # output arrives as 1 MiB lines; a growing `bytearray` cut from the front copied each
        # line four times (its client took 370 ms where the Python client's way takes 245 ms).
        self.chunk = b""  # the last read; from `offset` on, not yet returned
        self.offset = 0
        self.pending: list[bytes] = []  # the start of a line that spans reads
        self.poller = select.poll()
        self.poller.register(self.read_fd, select.POLLIN)
        self.bytes_received = 0

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]

    def feed(self, chunk: bytes) -> None:
        """Adds bytes read from the process; only once `next_line` has returned None."""
        self.bytes_received += len(chunk)
        self.chunk = chunk
        self.offset = 0

    def next_line(self) -> bytes | None:
        """The next whole line fed (without its newline), or None until more is fed."""
        end = self.chunk.find(b"\n", self.offset)
        if end < 0:
            if self.offset < len(self.chunk):
                self.pending.append(self.chunk[self.offset:] if self.offset else self.chunk)
            self.chunk = b""
            self.offset = 0
            return None
        line = self.chunk[self.offset:end]
        self.offset = end + 1
        if self.pending:
            self.pending.append(line)
            line = b"".join(self.pending)
            self.pending = []
        return line

    def read_line(self, deadline: float) -> bytes:
        while (line := self.next_line()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Deadline("no answer before the deadline")
            if not self.poller.poll(max(1, int(remaining * 1000))):
                continue
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise EOFError(f"the process ended (exit status {self.process.poll()})")
            self.feed(chunk)
        return line


class PyKernelClient:
    def __init__(self, binary: Path, stderr_path: Path, arguments: tuple[str, ...] = ()) -> None:
        self.stderr = open(stderr_path, "ab")
        self.process = REAPER.spawn([str(binary), "serve", *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=self.stderr, cwd="/tmp")
        self.channel = LineChannel(self.process)
        self.next_id = 0
        self.info = self.call("kernel.info", {}, timeout=60)

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, method: str, params: dict) -> int:
        self.next_id += 1
        self.channel.send(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}).encode() + b"\n")
        return self.next_id

    def wait(self, request_id: int, timeout: float = 30, on_output=None) -> dict:
        deadline = wait_deadline(timeout)
        while True:
            message = json.loads(self.channel.read_line(deadline))
            if "method" in message:
                if on_output and message["method"] == "code.output" and message["params"].get("request_id") == request_id:
                    if on_output(message["params"]):
                        return message
                continue
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"pykernel error: {message['error']}")
                return message["result"]

    def call(self, method: str, params: dict, timeout: float = 30) -> dict:
        return self.wait(self.send(method, params), timeout)

    def wait_all(self, request_ids: list[int], timeout: float = 30) -> None:
        """Until every one of the requests is answered, in whatever order."""
        deadline = wait_deadline(timeout)
        waiting = set(request_ids)
        while waiting:
            message = json.loads(self.channel.read_line(deadline))
            if "error" in message and message.get("id") in waiting:
                raise RuntimeError(f"pykernel error: {message['error']}")
            waiting.discard(message.get("id"))

    def create_context(self, isolation: str | None = None) -> str:
        return self.call("context.create", {"isolation": isolation} if isolation else {})["id"]

    def wait_for_pool(self) -> None:
        """Until the fork server's pool of process-context workers is full again."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pool = self.call("kernel.info", {})["isolation"]["pool"]
            if pool["ready"] >= pool["size"]:
                return
            time.sleep(0.005)
        raise RuntimeError("the pool of process-context workers did not fill up")

    def close(self) -> None:
        REAPER.kill(self.process)
        self.stderr.close()


# ---------------------------------------------------------------------------------------------
# The native probe: round trips without the Python client's own ~50 µs
# ---------------------------------------------------------------------------------------------

PROBE_SOURCE = BENCH / "probe.c"
PROBE_BINARY = BENCH / ".build" / "probe"
PYKERNEL_RESPONSE = '{"jsonrpc":"2.0","id":'  # how every response line of pykernel serve starts


def build_probe() -> Path:
    """Compiles probe.c (C, no dependencies) with the first C compiler found."""
    if PROBE_BINARY.exists() and PROBE_BINARY.stat().st_mtime >= PROBE_SOURCE.stat().st_mtime:
        return PROBE_BINARY
    compiler = next((shutil.which(name) for name in ("cc", "clang", "gcc") if shutil.which(name)), None)
    if compiler is None:
        raise RuntimeError("no C compiler (cc, clang or gcc) to build Benchmarks/probe.c")
    PROBE_BINARY.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([compiler, "-O2", "-o", str(PROBE_BINARY), str(PROBE_SOURCE)], check=True, timeout=300)
    return PROBE_BINARY


def probe(command: list[str], request: str, until: str, reps: int, warmup: int) -> list[float]:
    """Round-trip times in seconds, measured by the native probe against a fresh `command`."""
    done = subprocess.run([str(build_probe()), "--reps", str(reps), "--warmup", str(warmup), "--request", request,
                           "--until", until, "--", *command],
                          capture_output=True, text=True, timeout=600, cwd="/tmp", env=clean_environment())
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr.strip()}")
    return [float(line) / 1e6 for line in done.stdout.split()]


def probe_interleaved(systems: list[tuple[list[str], str, str]], reps: int, rounds: int = 5, warmup: int = 200) -> list[list[float]]:
    """Round-trip samples for several systems, measured in alternating rounds (each a fresh
    process) so that load changes on a shared machine hit them alike."""
    samples: list[list[float]] = [[] for _ in systems]
    for round_index in range(rounds):
        share = reps // rounds + (1 if round_index < reps % rounds else 0)
        for index, (command, request, until) in enumerate(systems):
            samples[index] += probe(command, request, until, share, warmup)
    return samples


def pykernel_transfers(client: "PyKernelClient", context: str, code: str, expected: int, runs: int) -> tuple[list[float], list[int]]:
    """Runs `code` runs + 1 times (the first a warm-up): the seconds from sending `code.run` to
    its response, with every byte of output received in `code.output` notifications (checked
    against `expected`), and the bytes each run put on the wire."""
    samples: list[float] = []
    wire: list[int] = []
    for index in range(runs + 1):
        received = [0]

        def count(params, received=received):
            received[0] += len(params["text"].encode())
            return False

        before = client.channel.bytes_received
        started = time.perf_counter()
        result = client.wait(client.send("code.run", {"code": code, "context": context}), timeout=300, on_output=count)
        elapsed = time.perf_counter() - started
        if received[0] != expected or result["status"] != "ok":
            raise RuntimeError(f"pykernel delivered {received[0]} of {expected} bytes ({result['status']})")
        if index:
            samples.append(elapsed)
            wire.append(client.channel.bytes_received - before)
    return samples, wire


def worker_transfers(worker: "WorkerClient", code: str, expected: int, runs: int) -> list[float]:
    """The same through the process worker: until its `completed`, every byte counted."""
    samples: list[float] = []
    for index in range(runs + 1):
        started = time.perf_counter()
        ended, received = worker.run(code, timeout=300)
        elapsed = time.perf_counter() - started
        if received != expected or ended != "completed":
            raise RuntimeError(f"the worker delivered {received} of {expected} bytes ({ended})")
        if index:
            samples.append(elapsed)
    return samples


def python_pipe_transfers(python: str, code: str, expected: int, runs: int) -> tuple[list[float], list[int]]:
    """Plain `python3` running `code` with its stdout a pipe read by the harness: the seconds from
    the go (the interpreter has started) to end of file with every byte read, and the peak RSS
    of each run's process (its `VmHWM`, which it writes to stderr once its output is written;
    `ru_maxrss` would count the harness's own memory before the `exec`)."""
    samples: list[float] = []
    peaks: list[int] = []
    floor_code = (f"import sys\nsys.stdin.readline()\n{code}\nsys.stdout.flush()\n"
                  "sys.stderr.write(next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')))\n")
    for index in range(runs + 1):
        process = REAPER.spawn([python, "-c", floor_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
        channel = LineChannel(process)
        time.sleep(0.05)  # let the interpreter start: the floor is the writing, not the start
        started = time.perf_counter()
        channel.send(b"go\n")
        deadline = wait_deadline(300)
        received = 0
        while True:
            if time.monotonic() > deadline:
                raise Deadline("plain python3 did not finish writing")
            if not channel.poller.poll(1000):
                continue
            chunk = os.read(channel.read_fd, 1 << 20)
            if not chunk:
                break
            received += len(chunk)
        elapsed = time.perf_counter() - started
        peaks.append(int(process.stderr.read().split()[1]) * 1024)
        REAPER.kill(process)
        if received != expected:
            raise RuntimeError(f"plain python3 wrote {received} of {expected} bytes")
        if index:
            samples.append(elapsed)
    return samples, peaks


def peak_rss(pid: int, reset: bool = False) -> int:
    """The peak RSS of a process (`VmHWM`), in bytes; with `reset`, the peak is first set back
    to the current RSS (`/proc/PID/clear_refs`), so the next reading is the peak since now."""
    if reset:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def rpc_line(method: str, params: dict) -> str:
    """A request line template for the probe (`%d`: the id), with `%` in params escaped."""
    text = json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params}, separators=(",", ":"))
    return text.replace("%", "%%").replace('"id":0', '"id":%d', 1)


# ---------------------------------------------------------------------------------------------
# The process-per-context worker
# ---------------------------------------------------------------------------------------------

class WorkerClient:
    def __init__(self, python: str) -> None:
        self.process = REAPER.spawn([python, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, cwd="/tmp")
        self.channel = LineChannel(self.process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def request(self, message: dict) -> None:
        self.channel.send(json.dumps(message).encode() + b"\n")

    def ping(self, timeout: float = 30) -> None:
        self.request({"type": "ping"})
        self.until_control(timeout)

    def run(self, code: str, timeout: float = 30, until_text: str | None = None) -> tuple[str, int]:
        """Runs code until its control message (or until `until_text` was written); returns
        (how it ended, bytes of stdout received)."""
        self.request({"code": code})
        return self.until_control(timeout, until_text)

    def until_control(self, timeout: float, until_text: str | None = None) -> tuple[str, int]:
        deadline = wait_deadline(timeout)
        received = 0
        while True:
            message = json.loads(self.channel.read_line(deadline))
            kind = message.get("type")
            if kind == "stdout":
                received += len(message["text"].encode())
                if until_text is not None and until_text in message["text"]:
                    return "output", received
            elif kind == "control":
                return message["text"], received

    def close(self) -> None:
        REAPER.kill(self.process)


# ---------------------------------------------------------------------------------------------
# Jupyter
# ---------------------------------------------------------------------------------------------

class JupyterKernel:
    """One ipykernel process driven by jupyter_client, as Jupyter-based interpreters do per context."""

    def __init__(self, stderr_file, wait_ready: bool = True) -> None:
        from jupyter_client import KernelManager
        self.manager = KernelManager(kernel_name="python3")
        REAPER.kernels.append(self.manager)
        self.manager.start_kernel(env=clean_environment(), stdout=subprocess.DEVNULL, stderr=stderr_file, cwd="/tmp")
        self.client = self.manager.client()
        self.client.start_channels()
        import zmq
        self.poller = zmq.Poller()
        self.poller.register(self.client.shell_channel.socket, zmq.POLLIN)
        self.poller.register(self.client.iopub_channel.socket, zmq.POLLIN)
        if wait_ready:
            self.client.wait_for_ready(timeout=60)
            self.drain()

    @property
    def pid(self) -> int | None:
        return kernel_pid(self.manager)

    def first_kernel_info(self, timeout: float = 60) -> None:
        deadline = wait_deadline(timeout)
        self.client.kernel_info()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Deadline("no kernel_info reply")
            message = self.client.get_shell_msg(timeout=remaining)
            if message["msg_type"] == "kernel_info_reply":
                return

    def drain(self) -> None:
        from queue import Empty
        while True:
            try:
                self.client.get_iopub_msg(timeout=0.05)
            except Empty:
                return

    def execute(self, code: str, timeout: float = 60, until_text: str | None = None) -> tuple[dict | None, int]:
        """Runs code until its execute_reply and its `idle` status have arrived (everything it
        printed has then been received), or until `until_text` was printed. Returns (reply, stdout bytes)."""
        deadline = wait_deadline(timeout)
        message_id = self.client.execute(code)
        reply = None
        idle = False
        received = 0
        shell, iopub = self.client.shell_channel, self.client.iopub_channel
        while reply is None or not idle:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Deadline("no execute_reply / idle")
            ready = dict(self.poller.poll(max(1, int(remaining * 1000))))
            if iopub.socket in ready:
                message = iopub.get_msg(timeout=0)
                if message.get("parent_header", {}).get("msg_id") == message_id:
                    kind = message["msg_type"]
                    if kind == "stream" and message["content"]["name"] == "stdout":
                        received += len(message["content"]["text"].encode())
                        if until_text is not None and until_text in message["content"]["text"]:
                            return None, received
                    elif kind == "status" and message["content"]["execution_state"] == "idle":
                        idle = True
            if shell.socket in ready:
                message = shell.get_msg(timeout=0)
                if message.get("parent_header", {}).get("msg_id") == message_id:
                    reply = message
        return reply, received

    def wait_reply(self, message_id: str, timeout: float) -> dict:
        deadline = wait_deadline(timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Deadline("no execute_reply")
            message = self.client.get_shell_msg(timeout=remaining)
            if message.get("parent_header", {}).get("msg_id") == message_id:
                return message

    def wait_stream(self, message_id: str, text: str, timeout: float) -> None:
        deadline = wait_deadline(timeout)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Deadline(f"no output {text!r}")
            message = self.client.get_iopub_msg(timeout=remaining)
            if (message.get("parent_header", {}).get("msg_id") == message_id and message["msg_type"] == "stream"
                    and text in message["content"]["text"]):
                return

    def close(self) -> None:
        try:
            self.client.stop_channels()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.manager.shutdown_kernel(now=True)
            if self.manager in REAPER.kernels:
                REAPER.kernels.remove(self.manager)
        except Exception:  # noqa: BLE001
            REAPER.kill_kernel(self.manager)


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------

def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, USS) in bytes, from /proc/PID/smaps_rollup."""
    rss = uss = 0
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            fields = line.split()
            if len(fields) < 2 or not fields[1].isdigit():
                continue
            if fields[0] == "Rss:":
                rss = int(fields[1]) * 1024
            elif fields[0] in ("Private_Clean:", "Private_Dirty:"):
                uss += int(fields[1]) * 1024
    return rss, uss


def process_tree_memory(pid: int) -> tuple[int, int]:
    """(RSS, USS) of a process and its descendants."""
    total_rss = total_uss = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            rss, uss = memory_of(current)
        except FileNotFoundError:
            continue
        total_rss += rss
        total_uss += uss
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total_rss, total_uss


def forked_children(pid: int) -> list[int]:
    """The pids of a process's children (/proc/PID/task/*/children)."""
    children = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as listing:
            children += [int(child) for child in listing.read().split()]
    return children


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_of(pid: int) -> int:
    """The resident set size of a process in bytes (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


# ---------------------------------------------------------------------------------------------
# Requests written without waiting for answers (the scale rows)
# ---------------------------------------------------------------------------------------------

def timed_requests(client: PyKernelClient, method: str, params: dict, reps: int) -> tuple[list[float], bytes]:
    """Round trips of one request through the Python client, each until its whole response line
    arrived (not parsed: a long response's parsing is the client's cost); returns the times and
    the last response line."""
    samples: list[float] = []
    line = b""
    for _ in range(reps):
        started = time.perf_counter()
        request_id = client.send(method, params)
        prefix = f'{PYKERNEL_RESPONSE}{request_id},'.encode()
        deadline = wait_deadline(60)
        while not (line := client.channel.read_line(deadline)).startswith(prefix):
            pass
        samples.append(time.perf_counter() - started)
    return samples, line


def exchange(channel: LineChannel, data: bytes, answers: int, is_answer, timeout: float, on_answer=None) -> list[bytes]:
    """Writes `data`, then reads until `answers` lines for which `is_answer(line)` is true
    arrived; returns those lines, each passed to `on_answer` as it arrives when given (a client
    handles answers while later ones are on their way). As a client that writes its requests at
    once, then reads: it waits for room in the pipe as a blocking write would, reading only when
    no room came for 20 ms (so that neither side blocks for good on a full pipe)."""
    deadline = wait_deadline(timeout)
    view = memoryview(data)
    received: list[bytes] = []
    poller = select.poll()
    poller.register(channel.read_fd, select.POLLIN)
    writable = select.poll()
    writable.register(channel.write_fd, select.POLLOUT)
    if view:
        os.set_blocking(channel.write_fd, False)
    try:
        while True:
            while view:
                try:
                    view = view[os.write(channel.write_fd, view):]
                except BlockingIOError:
                    if not writable.poll(20) and poller.poll(0):
                        break  # no room for a while, and answers wait: read some
            while (line := channel.next_line()) is not None:
                if is_answer(line):
                    received.append(line)
                    if on_answer is not None:
                        on_answer(line)
            if len(received) >= answers:
                return received
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Deadline(f"{len(received)} of {answers} answers before the deadline")
            for descriptor, _ in poller.poll(max(1, int(remaining * 1000))):
                chunk = os.read(descriptor, 1 << 20)
                if not chunk:
                    raise EOFError(f"the process ended (exit status {channel.process.poll()})")
                channel.feed(chunk)
    finally:
        os.set_blocking(channel.write_fd, True)


def pipelined_runs(client: PyKernelClient, requests: list[tuple[str, dict]], timeout: float = 120) -> float:
    """Writes every request at once (as `pipelined_workers` does to each worker), then reads until
    every one has been answered; fails on an error response or a run that did not end `ok` (each
    answer parsed as it arrives, as `pipelined_workers` parses each worker's control lines).
    Returns the seconds from the first write to the last answer (the requests are encoded before)."""
    first = client.next_id + 1
    client.next_id += len(requests)
    data = "".join(f'{{"jsonrpc":"2.0","id":{first + index},"method":"{method}","params":{json.dumps(params)}}}\n'
                   for index, (method, params) in enumerate(requests)).encode()
    prefix = PYKERNEL_RESPONSE.encode()

    def check(line: bytes) -> None:
        message = json.loads(line)
        if "error" in message or message["result"].get("status", "ok") != "ok":
            raise RuntimeError(f"pykernel answered a pipelined request with {line[:300]!r}")

    started = time.perf_counter()
    exchange(client.channel, data, len(requests), lambda line: line.startswith(prefix), timeout, on_answer=check)
    return time.perf_counter() - started


def pipelined_workers(workers: list[WorkerClient], code: str, runs: int, timeout: float = 120) -> float:
    """Writes runs/len(workers) run requests to each worker at once, then reads until every
    worker has answered all of its runs. Returns the seconds from the first write to the last
    answer (the requests are encoded before)."""
    per_worker = runs // len(workers)
    requests = (json.dumps({"code": code}).encode() + b"\n") * per_worker
    started = time.perf_counter()
    for worker in workers:
        worker.channel.send(requests)
    pending = {worker.channel.read_fd: [worker.channel, per_worker] for worker in workers}
    poller = select.poll()
    for descriptor in pending:
        poller.register(descriptor, select.POLLIN)
    deadline = wait_deadline(timeout)
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise Deadline(f"{len(pending)} workers had not answered every run before the deadline")
        for descriptor, _ in poller.poll(max(1, int(remaining * 1000))):
            state = pending[descriptor]
            channel = state[0]
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:
                raise EOFError("a worker ended")
            channel.feed(chunk)
            while (line := channel.next_line()) is not None:
                if line.startswith(b'{"type": "control"'):
                    if json.loads(line).get("text") != "completed":
                        raise RuntimeError(f"a worker answered a pipelined run with {line!r}")
                    state[1] -= 1
            if state[1] == 0:
                poller.unregister(descriptor)
                del pending[descriptor]
    return time.perf_counter() - started


def interrupted_jupyter_runs(kernel: "JupyterKernel", reps: int, start) -> list[float]:
    """`reps` runs (after one warm-up) each interrupted by `interrupt_kernel()` once `start()`,
    which begins the run, returns its message id and the time to measure from: the seconds from
    then until its `execute_reply` (an error) arrived."""
    samples: list[float] = []
    for index in range(reps + 1):
        message_id, since = start()
        kernel.manager.interrupt_kernel()
        reply = kernel.wait_reply(message_id, timeout=60)
        elapsed = time.perf_counter() - since
        if reply["content"].get("status") != "error":
            raise RuntimeError(f"Jupyter run ended {reply['content'].get('status')}")
        kernel.drain()
        if index:
            samples.append(elapsed)
    return samples


def interrupted_worker_runs(worker: "WorkerClient", reps: int, start) -> list[float]:
    """The same for the process worker (three warm-ups), interrupted by SIGINT once `start()`
    returns the time to measure from: until its `interrupted`."""
    samples: list[float] = []
    for index in range(reps + 3):
        since = start()
        os.kill(worker.pid, signal.SIGINT)
        ended, _ = worker.until_control(timeout=30)
        elapsed = time.perf_counter() - since
        if ended != "interrupted":
            raise RuntimeError(f"the worker's run ended {ended}")
        if index >= 3:
            samples.append(elapsed)
    return samples


# ---------------------------------------------------------------------------------------------
# The measurements
# ---------------------------------------------------------------------------------------------

def statistics_median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


class Bench:
    def __init__(self, arguments: argparse.Namespace) -> None:
        self.quick = arguments.quick
        self.binary = Path(arguments.pykernel)
        self.python = system_python()
        self.results = Results()
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log_path = RESULTS / "processes.log"
        self.log_path.write_bytes(b"")
        self.process_log = open(self.log_path, "ab")
        self.section_times: dict[str, float] = {}
        self.library = arguments.library if arguments.library is not None else not arguments.quick
        self.library_scratch_path = arguments.library_scratch_path
        self.only = [word.lower() for word in arguments.only or []]
        self.failures: list[str] = []

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def section(self, name: str, function) -> None:
        if self.only and not any(word in name.lower() for word in self.only):
            return
        log(name)
        started = time.monotonic()
        function()
        self.section_times[name] = time.monotonic() - started

    def run_all(self) -> dict:
        started = time.monotonic()
        self.machine = self.describe_machine()
        self.section("context creation", self.context_creation)
        self.section("first result", self.first_result)
        self.section("run round trip", self.round_trips)
        self.section("error round trip", self.error_round_trip)
        self.section("output throughput", self.throughput)
        self.section("100 MB outputs", self.bulk_outputs)
        self.section("memory", self.memory)
        self.section("interrupt latency", self.interrupts)
        self.section("timeout latency", self.timeouts)
        self.section("MCP round trip", self.mcp_round_trip)
        self.section("chart run", self.chart_run)
        self.section("process contexts", self.process_contexts)
        self.section("process-context burst sent at once", self.process_burst_at_once)
        self.section("scale", self.scale)
        if self.library:
            try:
                self.section("Swift library (swift package benchmark)", self.library_benchmarks)
            except (subprocess.SubprocessError, OSError, RuntimeError, ValueError, KeyError) as error:
                # Reported in the table and by the exit status, after the other rows are written.
                log(f"the Swift library benchmarks failed: {error}")
                self.failures.append(f"Swift library benchmarks (`swift package benchmark`, its output in "
                                     f"{self.log_path.relative_to(ROOT)}): {error}")
        self.results.compute_ratios()
        self.machine["load_average_end"] = os.getloadavg()
        return {
            "machine": self.machine,
            "quick": self.quick,
            "duration_s": round(time.monotonic() - started, 1),
            "section_durations_s": {name: round(value, 1) for name, value in self.section_times.items()},
            "rows": self.results.rows,
            "targets": evaluate_targets(self.results.rows),
            "only": self.only,
            "failures": self.failures,
        }

    def describe_machine(self) -> dict:
        model = ""
        try:
            with open("/proc/cpuinfo") as cpuinfo:
                model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
        except OSError:
            pass
        version = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
        python_version = subprocess.run([self.python, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
        from importlib.metadata import version as package_version
        client = PyKernelClient(self.binary, self.log_path)
        info = client.info
        client.close()
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cores": os.cpu_count(),
            "cpu": model,
            "kernel": platform.release(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "python": f"{python_version} ({self.python})",
            "pykernel": version or info.get("version"),
            "pykernel_protocol": info.get("protocol_version"),
            "pykernel_embedded_python": info.get("python_version"),
            "ipykernel": package_version("ipykernel"),
            "jupyter_client": package_version("jupyter_client"),
            "load_average_start": os.getloadavg(),
        }

    # (1) context creation ------------------------------------------------------------------

    def context_creation(self) -> None:
        row = self.results.row("context_creation", "Context creation", "time",
                               "pykernel: `context.create` round trip through one `pykernel serve`", short="context creation")
        request = rpc_line("context.create", {})
        # The pipes alone, with the same native client: `cat` echoes the request line back.
        samples, floor = probe_interleaved([([str(self.binary), "serve"], request, PYKERNEL_RESPONSE),
                                            (["cat"], request, '"id":')], self.reps(5000, 500))
        Results.add(row, "pykernel", "pykernel `context.create` (protocol, native client)", samples)
        Results.add(row, "pykernel", "`cat` echoing the request (native client + pipes floor, reference)", floor, reference=True)
        client = PyKernelClient(self.binary, self.log_path)
        for _ in range(200):
            client.create_context()
        samples = [timed(client.create_context) for _ in range(self.reps(3000, 300))]
        Results.add(row, "pykernel", "pykernel `context.create` (protocol, Python client, reference)", samples, reference=True)
        # The same client and pipes with a method that does nothing: the floor under the protocol rows.
        floor = [timed(lambda: client.call("kernel.info", {})) for _ in range(self.reps(2000, 300))]
        Results.add(row, "pykernel", "pykernel `kernel.info` (protocol floor, Python client, reference)", floor, reference=True)
        client.close()
        # The client and the pipes alone: `cat` echoes the same request line back.
        echo = REAPER.spawn(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        channel = LineChannel(echo)
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "context.create", "params": {}}).encode() + b"\n"

        def echo_round_trip() -> None:
            channel.send(request)
            json.loads(channel.read_line(wait_deadline(10)))

        for _ in range(200):
            echo_round_trip()
        floor = [timed(echo_round_trip) for _ in range(self.reps(2000, 300))]
        Results.add(row, "pykernel", "`cat` echoing the request (Python client + pipes floor, reference)", floor, reference=True)
        REAPER.kill(echo)
        Results.add(row, "pykernel", "pykernel process context (`isolation: process`, fork server, pool ready; Python client, reference)",
                    self.process_context_samples(self.reps(100, 20), first_result=False), reference=True)

        samples = []
        for _ in range(self.reps(30, 5)):
            kernel = None
            started = time.perf_counter()
            try:
                kernel = JupyterKernel(self.process_log, wait_ready=False)
                kernel.first_kernel_info()
                samples.append(time.perf_counter() - started)
            finally:
                if kernel:
                    kernel.close()
        Results.add(row, "jupyter", "Jupyter kernel: start → first `kernel_info` reply", samples)

        samples = []
        for _ in range(self.reps(50, 15)):
            started = time.perf_counter()
            worker = WorkerClient(self.python)
            worker.ping()
            samples.append(time.perf_counter() - started)
            worker.close()
        Results.add(row, "worker", "process worker: spawn → first JSON answer", samples)

        samples = []
        for _ in range(self.reps(50, 15)):
            started = time.perf_counter()
            subprocess.run([self.python, "-c", "pass"], env=clean_environment(), check=True, timeout=60)
            samples.append(time.perf_counter() - started)
        Results.add(row, "python", "`python3 -c pass` (floor)", samples, reference=False)

    # (2) first result -----------------------------------------------------------------------

    def first_result(self) -> None:
        row = self.results.row("first_result", "New context → first result", "time",
                               f"create a context, run `{FIRST_RESULT_CODE}`, until its output arrives", short="new context → first result")
        client = PyKernelClient(self.binary, self.log_path)
        for _ in range(50):
            self.pykernel_first_result(client)
        samples = [timed(lambda: self.pykernel_first_result(client)) for _ in range(self.reps(1000, 200))]
        Results.add(row, "pykernel", "pykernel (protocol)", samples)
        client.close()
        created: list[float] = []
        samples = self.process_context_samples(self.reps(100, 20), first_result=True, created=created)
        Results.add(row, "pykernel", "pykernel process context (fork server, pool ready; reference)", samples, reference=True,
                    detail=f"of which `context.create` {format_value(statistics_median(created), 'time')}, "
                           f"then the run until its output {format_value(statistics_median([total - part for total, part in zip(samples, created)]), 'time')}")

        samples = []
        for _ in range(self.reps(20, 3)):
            kernel = None
            started = time.perf_counter()
            try:
                kernel = JupyterKernel(self.process_log, wait_ready=True)
                _, received = kernel.execute(FIRST_RESULT_CODE, until_text=FIRST_RESULT_TEXT)
                samples.append(time.perf_counter() - started)
            finally:
                if kernel:
                    kernel.close()
        Results.add(row, "jupyter", "Jupyter kernel (start, ready, execute)", samples)

        samples = []
        for _ in range(self.reps(50, 15)):
            started = time.perf_counter()
            worker = WorkerClient(self.python)
            ended, _ = worker.run(FIRST_RESULT_CODE, until_text=FIRST_RESULT_TEXT)
            assert ended == "output", ended
            samples.append(time.perf_counter() - started)
            worker.close()
        Results.add(row, "worker", "process worker", samples)

    def process_context_samples(self, count: int, first_result: bool, created: list[float] | None = None) -> list[float]:
        """`context.create {isolation: process}` (and, with `first_result`, its first result) in a
        `pykernel serve --pool-size 2`, each with the fork server's pool ready. `created` gets each
        sample's creation part."""
        client = PyKernelClient(self.binary, self.log_path, ("--pool-size", "2"))
        samples = []
        try:
            for index in range(count + 5):
                client.wait_for_pool()
                started = time.perf_counter()
                context = client.call("context.create", {"isolation": "process"})["id"]
                creation = time.perf_counter() - started
                if first_result:
                    request = client.send("code.run", {"code": FIRST_RESULT_CODE, "context": context})
                    client.wait(request, on_output=lambda params: FIRST_RESULT_TEXT in params["text"])
                elapsed = time.perf_counter() - started
                if first_result:
                    client.wait(request)
                client.call("context.delete", {"id": context})
                if index >= 5:  # the first few warm the server's own paths
                    samples.append(elapsed)
                    if created is not None:
                        created.append(creation)
        finally:
            client.close()
        return samples

    def process_context_memory(self) -> tuple[int, int]:
        """(RSS, USS) of an idle process context's worker after `x = 1` (mean of two)."""
        client = PyKernelClient(self.binary, self.log_path, ("--pool-size", "2"))
        try:
            client.wait_for_pool()
            pids = []
            for _ in range(2):
                context = client.call("context.create", {"isolation": "process"})["id"]
                client.call("code.run", {"code": "x = 1", "context": context})
                pids.append(int(client.call("code.run", {"code": "import os; print(os.getpid())", "context": context})["stdout"]))
            time.sleep(0.5)
            measured = [memory_of(pid) for pid in pids]
        finally:
            client.close()
        return sum(rss for rss, _ in measured) // 2, sum(uss for _, uss in measured) // 2

    def process_context_idle_memory(self) -> tuple[int, int]:
        """(RSS, USS) of an idle process context's worker: created and never run (mean of two).

        With a pool of one, the worker a creation takes is the fork server's only child before it
        (the pool refills with a new one), so its pid is known without running code in it."""
        client = PyKernelClient(self.binary, self.log_path, ("--pool-size", "1"))
        try:
            client.wait_for_pool()
            fork_server = client.call("kernel.info", {})["isolation"]["fork_server"]["pid"]
            taken: list[int] = []
            for _ in range(2):
                client.wait_for_pool()
                pool = set(forked_children(fork_server)) - set(taken)
                assert len(pool) == 1, pool
                client.call("context.create", {"isolation": "process"})
                taken += pool
            client.wait_for_pool()
            time.sleep(0.5)
            measured = [memory_of(pid) for pid in taken]
        finally:
            client.close()
        return sum(rss for rss, _ in measured) // 2, sum(uss for _, uss in measured) // 2

    @staticmethod
    def pykernel_first_result(client: PyKernelClient) -> None:
        context = client.create_context()
        request = client.send("code.run", {"code": FIRST_RESULT_CODE, "context": context})
        client.wait(request, on_output=lambda params: FIRST_RESULT_TEXT in params["text"])
        client.wait(request)  # the response (not timed separately; it follows the output at once)

    # (3) run round trip ---------------------------------------------------------------------

    def round_trips(self) -> None:
        # `1+1` shows a value: against `pass`, the added cost of a result (issue 12).
        codes = (("pass", "pass"), ("print('hi')", "print"), ("1+1", "result"))
        rows = {key: self.results.row(f"round_trip_{key}", f"Run round trip: `{code}`", "time",
                                      "warm context; until the run's response (and its output) arrived",
                                      short=f"round trip {code}")
                for code, key in codes}
        # The native-client rows first, pykernel and the worker in alternating rounds, while no
        # other process of the benchmark runs (a Jupyter kernel just started is busy for a while).
        native = {}
        for code, key in codes:
            native[key] = probe_interleaved(
                [([str(self.binary), "serve"], rpc_line("code.run", {"code": code}), PYKERNEL_RESPONSE),
                 ([self.python, str(WORKER)], json.dumps({"code": code}).replace("%", "%%"), '"type": "control"'),
                 # The default context as a process context: the run relayed to its forked worker.
                 ([str(self.binary), "serve", "--isolation", "process"], rpc_line("code.run", {"code": code}), PYKERNEL_RESPONSE)],
                self.reps(5000, 500))
        client = PyKernelClient(self.binary, self.log_path)
        context = client.create_context()
        worker = WorkerClient(self.python)
        worker.ping()
        kernel = JupyterKernel(self.process_log)
        try:
            for code, key in codes:
                row = rows[key]
                Results.add(row, "pykernel", "pykernel `code.run` (protocol, native client)", native[key][0])
                Results.add(row, "pykernel", "pykernel `code.run` in a process context (`--isolation process`, native client, reference)",
                            native[key][2], reference=True)
                self.client_rows(row, code, client, context, kernel, worker, worker_native=native[key][1])
        finally:
            client.close()
            worker.close()
            kernel.close()

    def client_rows(self, row, code: str, client, context: str, kernel, worker, worker_native) -> None:
        """The rows of a round trip after pykernel's native one: pykernel through the Python client
        (reference), the Jupyter kernel, the worker's native samples and the worker through the
        Python client (reference), each warmed up first."""
        params = {"code": code, "context": context}
        for _ in range(200):
            client.call("code.run", params)
        samples = [timed(lambda: client.call("code.run", params)) for _ in range(self.reps(3000, 300))]
        Results.add(row, "pykernel", "pykernel `code.run` (protocol, Python client, reference)", samples, reference=True)
        for _ in range(20):
            kernel.execute(code)
        samples = [timed(lambda: kernel.execute(code)) for _ in range(self.reps(300, 50))]
        Results.add(row, "jupyter", "Jupyter kernel (execute_reply + idle)", samples)
        Results.add(row, "worker", "process worker (native client)", worker_native)
        for _ in range(200):
            worker.run(code)
        samples = [timed(lambda: worker.run(code)) for _ in range(self.reps(3000, 500))]
        Results.add(row, "worker", "process worker (Python client, reference)", samples, reference=True)

    def error_round_trip(self) -> None:
        """`1/0` in a warm context until the response carrying the error record (name, value, the
        traceback as `python3` prints it), against pykernel's own `pass` round trip measured in the
        same alternating rounds (the target: at most twice it)."""
        row = self.results.row("round_trip_error", f"Error round trip: `{ERROR_CODE}`", "time",
                               "warm context; until the response with the full error record (traceback) arrived",
                               short=f"round trip {ERROR_CODE}")
        error_line = rpc_line("code.run", {"code": ERROR_CODE})
        native = probe_interleaved(
            [([str(self.binary), "serve"], error_line, PYKERNEL_RESPONSE),
             ([str(self.binary), "serve"], rpc_line("code.run", {"code": "pass"}), PYKERNEL_RESPONSE),
             ([self.python, str(WORKER)], json.dumps({"code": ERROR_CODE}), '"type": "control"')],
            self.reps(5000, 500))
        Results.add(row, "pykernel", "pykernel `code.run` (protocol, native client)", native[0])
        Results.add(row, "pykernel", "pykernel `code.run` of `pass` in the same rounds (native client, reference)", native[1],
                    reference=True)
        client = PyKernelClient(self.binary, self.log_path)
        context = client.create_context()
        worker = WorkerClient(self.python)
        worker.ping()
        kernel = JupyterKernel(self.process_log)
        try:
            self.client_rows(row, ERROR_CODE, client, context, kernel, worker, worker_native=native[2])
        finally:
            client.close()
            worker.close()
            kernel.close()

    # (4) output throughput ------------------------------------------------------------------

    def throughput(self) -> None:
        row = self.results.row("throughput", f"Output throughput: `{THROUGHPUT_CODE}`", "throughput",
                               f"{THROUGHPUT_BYTES:,} bytes of output received by the client, until the run's response",
                               short="200k printed lines (MB/s)")
        client = PyKernelClient(self.binary, self.log_path)
        samples, wire = pykernel_transfers(client, client.create_context(), THROUGHPUT_CODE, THROUGHPUT_BYTES, self.reps(10, 3))
        Results.add(row, "pykernel", "pykernel (protocol, `code.output` notifications)", samples, bytes_moved=THROUGHPUT_BYTES,
                    detail=f"{sum(wire) / len(wire) / 1e6:.1f} MB on the wire per run (the result repeats stdout up to max_output_bytes)")
        client.close()

        kernel = JupyterKernel(self.process_log)
        samples = []
        try:
            for index in range(self.reps(5, 2) + 1):
                started = time.perf_counter()
                reply, received = kernel.execute(THROUGHPUT_CODE, timeout=300)
                elapsed = time.perf_counter() - started
                if received != THROUGHPUT_BYTES:
                    raise RuntimeError(f"Jupyter delivered {received} of {THROUGHPUT_BYTES} bytes")
                if index:
                    samples.append(elapsed)
        finally:
            kernel.close()
        Results.add(row, "jupyter", "Jupyter kernel (iopub `stream`)", samples, bytes_moved=THROUGHPUT_BYTES)

        worker = WorkerClient(self.python)
        worker.ping()
        try:
            samples = worker_transfers(worker, THROUGHPUT_CODE, THROUGHPUT_BYTES, self.reps(10, 3))
        finally:
            worker.close()
        Results.add(row, "worker", "process worker (a JSON line per printed line)", samples, bytes_moved=THROUGHPUT_BYTES)

        samples, _ = python_pipe_transfers(self.python, THROUGHPUT_CODE, THROUGHPUT_BYTES, self.reps(10, 3))
        Results.add(row, "python", "plain `python3` into a pipe (floor)", samples, bytes_moved=THROUGHPUT_BYTES)

    def bulk_outputs(self) -> None:
        """100 MiB in one `sys.stdout.write`, and 100 MiB written to descriptor 1 by a subprocess:
        time until the response with every byte received, and the peak RSS of `pykernel serve`."""
        runs = self.reps(5, 2)
        for key, title, code, short in (
                ("bulk_write", f"Output throughput: one 100 MB `sys.stdout.write`: `{BULK_WRITE_CODE}`", BULK_WRITE_CODE,
                 "one 100 MB write (MB/s)"),
                ("subprocess_write", "Output throughput: a subprocess writing 100 MB to fd 1: "
                                     f"`{SUBPROCESS_WRITE_CODE.replace('|', chr(92) + '|')}`",
                 SUBPROCESS_WRITE_CODE, "100 MB from a subprocess (MB/s)")):
            row = self.results.row(key, title, "throughput",
                                   f"{BULK_BYTES:,} bytes of output received by the client, until the run's response", short=short)
            client = PyKernelClient(self.binary, self.log_path)
            try:
                context = client.create_context()
                client.call("code.run", {"code": "pass", "context": context})
                before = peak_rss(client.pid, reset=True)
                samples, wire = pykernel_transfers(client, context, code, BULK_BYTES, runs)
                peak = peak_rss(client.pid)
            finally:
                client.close()
            Results.add(row, "pykernel", "pykernel (protocol, `code.output` notifications)", samples, bytes_moved=BULK_BYTES,
                        detail=f"peak RSS of `pykernel serve` {peak / 2**20:.0f} MB ({before / 2**20:.0f} MB before"
                               + ("; the code's own 100 MB string included" if key == "bulk_write" else "")
                               + f"); {sum(wire) / len(wire) / 1e6:.0f} MB on the wire per run")
            if key == "bulk_write":
                worker = WorkerClient(self.python)
                worker.ping()
                try:
                    samples = worker_transfers(worker, code, BULK_BYTES, runs)
                    peak = peak_rss(worker.pid)
                finally:
                    worker.close()
                Results.add(row, "worker", "process worker (one JSON line)", samples, bytes_moved=BULK_BYTES,
                            detail=f"peak RSS {peak / 2**20:.0f} MB")
            samples, peaks = python_pipe_transfers(self.python, code, BULK_BYTES, runs)
            Results.add(row, "python", "plain `python3` into a pipe (floor)", samples, bytes_moved=BULK_BYTES,
                        detail=f"peak RSS {max(peaks) / 2**20:.0f} MB"
                               + ("" if key == "bulk_write" else "; the process worker cannot take part: a subprocess "
                                  "writes into its protocol pipe"))

    # (5) memory -----------------------------------------------------------------------------

    def memory(self) -> None:
        contexts = 1000
        empty = self.results.row("memory_empty", f"Memory per empty context ({contexts:,} in one `pykernel serve`)", "memory",
                                 "USS (private bytes) from /proc/PID/smaps_rollup; Jupyter and worker: one whole process per context, after one small run",
                                 short="memory per empty context")
        used = self.results.row("memory_used", f"Memory per context after one small run ({contexts:,} contexts)", "memory",
                                "each context ran `x = 1`; USS", short="memory per context after a run")
        client = PyKernelClient(self.binary, self.log_path)
        try:
            client.call("code.run", {"code": "x = 1"})  # the default context, as the others below
            base_rss, base_uss = memory_of(client.pid)
            ids = [client.create_context() for _ in range(contexts)]
            empty_rss, empty_uss = memory_of(client.pid)
            for context in ids:
                client.call("code.run", {"code": "x = 1", "context": context})
            used_rss, used_uss = memory_of(client.pid)
        finally:
            client.close()
        detail = f"whole process: {base_rss / 2**20:.1f} MB RSS, {base_uss / 2**20:.1f} MB USS before the contexts"
        Results.add(empty, "pykernel", "pykernel", [(empty_uss - base_uss) / contexts],
                    detail=f"RSS {(empty_rss - base_rss) / contexts / 1024:.2f} KB; " + detail)
        Results.add(used, "pykernel", "pykernel", [(used_uss - base_uss) / contexts],
                    detail=f"RSS {(used_rss - base_rss) / contexts / 1024:.2f} KB")

        kernel = JupyterKernel(self.process_log)
        try:
            kernel.execute("x = 1")
            time.sleep(0.5)
            rss, uss = process_tree_memory(kernel.pid)
        finally:
            kernel.close()
        for row in (empty, used):
            Results.add(row, "jupyter", "Jupyter kernel (one process)", [uss], detail=f"RSS {rss / 2**20:.1f} MB")

        rss, uss = self.process_context_idle_memory()
        Results.add(empty, "pykernel", "pykernel process context (its forked worker, created and never run; reference)", [uss],
                    reference=True, detail=f"RSS {rss / 2**20:.1f} MB, mostly shared with the fork server")
        rss, uss = self.process_context_memory()
        Results.add(used, "pykernel", "pykernel process context (its forked worker; reference)", [uss],
                    reference=True, detail=f"RSS {rss / 2**20:.1f} MB, mostly shared with the fork server")

        worker = WorkerClient(self.python)
        try:
            worker.run("x = 1")
            rss, uss = memory_of(worker.pid)
        finally:
            worker.close()
        for row in (empty, used):
            Results.add(row, "worker", "process worker (one process)", [uss], detail=f"RSS {rss / 2**20:.1f} MB")

    # (6) interrupt latency ------------------------------------------------------------------

    def interrupts(self) -> None:
        rows = {name: self.results.row(f"interrupt_{name}", f"Interrupt latency: `{'while True: pass' if name == 'loop' else 'time.sleep(1000)'}`",
                                       "time", "from sending the interrupt until the run's response arrived", short=f"interrupt {name}")
                for name in INTERRUPT_CODES}
        client = PyKernelClient(self.binary, self.log_path)
        context = client.create_context()
        try:
            for name, code in INTERRUPT_CODES.items():
                samples = []
                for index in range(self.reps(200, 30) + 3):
                    run = client.send("code.run", {"code": code, "context": context, "timeout": 60})
                    client.wait(run, on_output=lambda params: "go" in params["text"])
                    client.next_id += 1
                    line = json.dumps({"jsonrpc": "2.0", "id": client.next_id, "method": "code.interrupt",
                                       "params": {"context": context}}).encode() + b"\n"
                    started = time.perf_counter()
                    client.channel.send(line)
                    result = client.wait(run, timeout=30)
                    elapsed = time.perf_counter() - started
                    if result["status"] != "interrupted":
                        raise RuntimeError(f"pykernel run ended {result['status']}")
                    if index >= 3:
                        samples.append(elapsed)
                Results.add(rows[name], "pykernel", "pykernel `code.interrupt` (protocol)", samples)
        finally:
            client.close()

        kernel = JupyterKernel(self.process_log)
        try:
            for name, code in INTERRUPT_CODES.items():
                def started_jupyter(code=code) -> tuple[str, float]:
                    message_id = kernel.client.execute(code)
                    kernel.wait_stream(message_id, "go", timeout=60)
                    return message_id, time.perf_counter()
                Results.add(rows[name], "jupyter", "Jupyter `interrupt_kernel()` → execute_reply",
                            interrupted_jupyter_runs(kernel, self.reps(30, 5), started_jupyter))
        finally:
            kernel.close()

        worker = WorkerClient(self.python)
        worker.ping()
        try:
            for name, code in INTERRUPT_CODES.items():
                def started_worker(code=code) -> float:
                    ended, _ = worker.run(code, until_text="go")
                    assert ended == "output", ended
                    return time.perf_counter()
                Results.add(rows[name], "worker", "process worker: SIGINT → `interrupted`",
                            interrupted_worker_runs(worker, self.reps(200, 30), started_worker))
        finally:
            worker.close()


    def timeouts(self) -> None:
        """How late after its timeout a run's answer arrives: from sending the run, minus the
        timeout (50 ms). pykernel stops the run itself (its deadline counts from the run's start,
        a few tens of µs after the request is sent); the worker's and Jupyter's callers keep the
        time and interrupt, as their users must."""
        rows = {name: self.results.row(f"timeout_{name}", f"Timeout latency: `{code.splitlines()[-1]}` with a {TIMEOUT_SECONDS * 1000:.0f} ms timeout",
                                       "time", "from sending the run until its answer arrived, minus the timeout", short=f"timeout {name}")
                for name, code in TIMEOUT_CODES.items()}
        client = PyKernelClient(self.binary, self.log_path)
        context = client.create_context()
        try:
            for name, code in TIMEOUT_CODES.items():
                samples, server_side = [], []
                for index in range(self.reps(100, 20) + 3):
                    started = time.perf_counter()
                    result = client.wait(client.send("code.run", {"code": code, "context": context, "timeout": TIMEOUT_SECONDS}), timeout=30)
                    elapsed = time.perf_counter() - started
                    if result["status"] != "timeout":
                        raise RuntimeError(f"pykernel run ended {result['status']}")
                    if index >= 3:
                        samples.append(elapsed - TIMEOUT_SECONDS)
                        server_side.append(result["duration"] - TIMEOUT_SECONDS)
                Results.add(rows[name], "pykernel", "pykernel `code.run` with `timeout` (protocol)", samples)
                Results.add(rows[name], "pykernel", "pykernel: the result's `duration` minus the timeout (from the deadline to the result, "
                            "in the server; reference)", server_side, reference=True)
            # The floor under these rows on this machine: a run that sleeps as long, with no stop.
            idle = []
            for index in range(self.reps(100, 20) + 3):
                started = time.perf_counter()
                client.wait(client.send("code.run", {"code": IDLE_CODE, "context": context}), timeout=30)
                if index >= 3:
                    idle.append(time.perf_counter() - started - TIMEOUT_SECONDS)
            Results.add(rows["sleep"], "pykernel", f"pykernel `code.run` of `{IDLE_CODE}`, no timeout, minus 50 ms "
                        "(the round trip of a run that waits 50 ms; reference)", idle, reference=True)
        finally:
            client.close()

        def deadline_after(started: float) -> float:
            """Sleeps until the timeout has passed since `started` (as the caller's timer does);
            the deadline, which the measurement counts from."""
            deadline = started + TIMEOUT_SECONDS
            if deadline > time.perf_counter():
                time.sleep(deadline - time.perf_counter())
            return deadline

        kernel = JupyterKernel(self.process_log)
        try:
            for name, code in TIMEOUT_CODES.items():
                def timed_out_jupyter(code=code) -> tuple[str, float]:
                    started = time.perf_counter()
                    message_id = kernel.client.execute(code)
                    return message_id, deadline_after(started)
                Results.add(rows[name], "jupyter", "Jupyter: the caller's timer, `interrupt_kernel()` → execute_reply",
                            interrupted_jupyter_runs(kernel, self.reps(30, 5), timed_out_jupyter))
        finally:
            kernel.close()

        worker = WorkerClient(self.python)
        worker.ping()
        try:
            for name, code in TIMEOUT_CODES.items():
                def timed_out_worker(code=code) -> float:
                    started = time.perf_counter()
                    worker.request({"code": code})
                    return deadline_after(started)
                Results.add(rows[name], "worker", "process worker: the caller's timer, SIGINT → `interrupted`",
                            interrupted_worker_runs(worker, self.reps(100, 20), timed_out_worker))
            idle = []
            for index in range(self.reps(100, 20) + 3):
                started = time.perf_counter()
                worker.run(IDLE_CODE)
                if index >= 3:
                    idle.append(time.perf_counter() - started - TIMEOUT_SECONDS)
            Results.add(rows["sleep"], "worker", f"process worker: `{IDLE_CODE}`, minus 50 ms (reference)", idle, reference=True)
        finally:
            worker.close()

    # (7) pykernel mcp through the official MCP client ----------------------------------------

    def mcp_round_trip(self) -> None:
        """`tools/call run_python` of `pass` through the official MCP Python client (stdio), next
        to `code.run` of `pass` through PyKernel's own Python client, each against its own server."""
        import asyncio

        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        sys.path.insert(0, str(ROOT / "python"))
        from pykernel import PyKernel

        row = self.results.row("mcp_round_trip_pass", "Tool call round trip: `pass`", "time",
                               "warm context; each front through its own Python client",
                               short="tool call pass")
        reps = self.reps(2000, 200)

        async def measure_mcp() -> list[float]:
            params = StdioServerParameters(command=str(self.binary), args=["mcp"], env=clean_environment())
            with open(self.log_path, "a", encoding="utf-8") as errors:
                async with stdio_client(params, errlog=errors) as (read, write):
                    async with ClientSession(read, write) as session:
                        await session.initialize()
                        arguments = {"code": "pass"}
                        for _ in range(100):
                            await session.call_tool("run_python", arguments)
                        samples = []
                        for _ in range(reps):
                            started = time.perf_counter()
                            await session.call_tool("run_python", arguments)
                            samples.append(time.perf_counter() - started)
                        return samples

        Results.add(row, "pykernel", "`pykernel mcp` tools/call run_python (official MCP Python client)",
                    asyncio.run(measure_mcp()))
        with PyKernel(str(self.binary)) as kernel:
            for _ in range(100):
                kernel.run_code("pass")
            samples = [timed(lambda: kernel.run_code("pass")) for _ in range(reps)]
        Results.add(row, "pykernel", "`pykernel serve` code.run (PyKernel Python client, reference)", samples,
                    reference=True)

    # (7) the Swift library, through package-benchmark ---------------------------------------

    LIBRARY_ROWS = {
        # benchmark name: (row key, label, samples per measurement)
        "createContext": ("context_creation", "pykernel Swift library `createContext()` (each sample: mean of 1,000)", 1000),
        "createContext_+_first_result_of_json.dumps": ("first_result", "pykernel Swift library", 1),
        "run_pass_(round_trip,_warm_context)": ("round_trip_pass", "pykernel Swift library `run(\"pass\").result()`", 1),
        "run_print('hi')_(round_trip,_warm_context)": ("round_trip_print", "pykernel Swift library", 1),
        "memory_per_empty_context_(1000_contexts)": ("memory_empty", "pykernel Swift library (1,000 contexts per sample)", 1),
        "memory_per_context_after_one_run_(1000_contexts)": ("memory_used", "pykernel Swift library (1,000 contexts per sample)", 1),
    }

    CHART_CODE = ("import matplotlib.pyplot as plt\nfigure = plt.figure()\n"
                  "plt.plot(range(1000), [i * i % 977 for i in range(1000)], label='series')\n"
                  "plt.title('t')\nplt.show()")

    def chart_run(self) -> None:
        """A run that draws a 1,000-point line chart: pykernel's answer carries the PNG and the
        chart record; Jupyter's inline backend sends the PNG as display_data before idle."""
        row = self.results.row("chart_run", "Run drawing a 1,000-point line chart", "time",
                               "warm context, matplotlib imported; until the response with PNG (+ chart record) arrived",
                               short="chart run")
        client = PyKernelClient(self.binary, self.log_path, ("--venv", str(VENV)))
        kernel = JupyterKernel(self.process_log)
        try:
            context = client.create_context()
            params = {"code": self.CHART_CODE, "context": context}
            first = client.call("code.run", params, timeout=120)
            results = first.get("results") or []
            if not (results and "image/png" in results[0]["data"] and (results[0].get("chart") or {}).get("type") == "line"):
                raise RuntimeError(f"pykernel's chart run returned no line chart: {json.dumps(first)[:500]}")
            for _ in range(5):
                client.call("code.run", params, timeout=120)
            samples = [timed(lambda: client.call("code.run", params, timeout=120)) for _ in range(self.reps(50, 10))]
            Results.add(row, "pykernel", "pykernel `code.run` (PNG + chart record in the response)", samples)

            kernel.execute("%matplotlib inline", timeout=120)
            for _ in range(5):
                kernel.execute(self.CHART_CODE, timeout=120)
            samples = [timed(lambda: kernel.execute(self.CHART_CODE, timeout=120)) for _ in range(self.reps(50, 10))]
            Results.add(row, "jupyter", "Jupyter kernel, inline backend (display_data, execute_reply + idle)", samples)
        finally:
            client.close()
            kernel.close()

    CPU_CODE = "s = 0\nfor i in range(3_000_000): s += i"

    def process_contexts(self) -> None:
        """Issue 11's rows: a burst of 100 creations, two CPU-bound runs at once, `import pandas`
        in a fresh context with and without `--preload`."""
        burst = self.results.row("burst_creation", "Burst: 100 context creations, one after the other", "time",
                                 "each creation timed; a fresh process (or kernel) per context", short="burst of 100")
        client = PyKernelClient(self.binary, self.log_path, ("--pool-size", "2"))
        try:
            client.wait_for_pool()
            samples, contexts = [], []
            for _ in range(100):
                started = time.perf_counter()
                contexts.append(client.call("context.create", {"isolation": "process"})["id"])
                samples.append(time.perf_counter() - started)
            for context in contexts:
                client.call("context.delete", {"id": context})
            Results.add(burst, "pykernel", "pykernel process contexts (`isolation: process`, fork server, pool of 2)", samples)
        finally:
            client.close()
        samples, workers = [], []
        try:
            for _ in range(self.reps(100, 30)):
                started = time.perf_counter()
                worker = WorkerClient(self.python)
                worker.ping()
                samples.append(time.perf_counter() - started)
                workers.append(worker)
        finally:
            for worker in workers:
                worker.close()
        Results.add(burst, "worker", "process workers: spawn → first JSON answer", samples)
        samples = []
        for _ in range(self.reps(10, 3)):
            started = time.perf_counter()
            kernel = JupyterKernel(self.process_log, wait_ready=True)
            samples.append(time.perf_counter() - started)
            kernel.close()
        Results.add(burst, "jupyter", "Jupyter kernels: start → ready (10 in a row)", samples)

        parallel = self.results.row("parallel_runs", "Two CPU-bound runs at once in two contexts", "time",
                                    f"`{self.CPU_CODE.splitlines()[1]}` in each of two contexts, sent together; until both answered",
                                    short="two CPU-bound runs")
        # Interleaved: each round measures every system in turn, so a slow minute of the host
        # (or what an earlier section left running) weighs on all of them alike.
        client = PyKernelClient(self.binary, self.log_path, ("--pool-size", "2"))
        workers = [WorkerClient(self.python) for _ in range(2)]
        try:
            client.wait_for_pool()
            pairs = {isolation: [client.call("context.create", {"isolation": isolation})["id"] for _ in range(2)]
                     for isolation in ("process", "namespace")}
            for worker in workers:
                worker.ping()
            samples = {name: [] for name in ("process", "namespace", "worker")}
            alone = {name: [] for name in ("process", "namespace")}
            for _ in range(self.reps(5, 2)):
                for isolation, pair in pairs.items():
                    alone[isolation].append(timed(lambda: client.call("code.run", {"code": self.CPU_CODE, "context": pair[0]}, timeout=120)))
                    started = time.perf_counter()
                    client.wait_all([client.send("code.run", {"code": self.CPU_CODE, "context": context}) for context in pair],
                                    timeout=120)
                    samples[isolation].append(time.perf_counter() - started)
                started = time.perf_counter()
                for worker in workers:
                    worker.request({"code": self.CPU_CODE})
                for worker in workers:
                    worker.until_control(120)
                samples["worker"].append(time.perf_counter() - started)
            for isolation, label, reference in (("process", "pykernel process contexts", False),
                                                ("namespace", "pykernel namespace contexts (one interpreter; reference)", True)):
                Results.add(parallel, "pykernel", label, samples[isolation], reference=reference,
                            detail=f"one run alone: {format_value(statistics_median(alone[isolation]), 'time')}")
            Results.add(parallel, "worker", "two process workers", samples["worker"])
        finally:
            client.close()
            for worker in workers:
                worker.close()

        pandas = self.results.row("import_pandas", "`import pandas` in a fresh context", "time",
                                  "create a context, run `import pandas`, until the response", short="import pandas")
        for arguments, label, reference in ((("--preload", "pandas"), "pykernel process context, `--preload pandas`", False),
                                            ((), "pykernel process context, no preload (reference)", True)):
            client = PyKernelClient(self.binary, self.log_path, ("--venv", str(VENV), "--pool-size", "2", *arguments))
            try:
                samples = []
                for _ in range(self.reps(10, 3)):
                    client.wait_for_pool()
                    started = time.perf_counter()
                    context = client.call("context.create", {"isolation": "process"})["id"]
                    result = client.call("code.run", {"code": "import pandas", "context": context}, timeout=120)
                    samples.append(time.perf_counter() - started)
                    if result["status"] != "ok":
                        raise RuntimeError(f"import pandas failed in pykernel: {result}")
                    client.call("context.delete", {"id": context})
                Results.add(pandas, "pykernel", label, samples, reference=reference)
            finally:
                client.close()
        samples = []
        for _ in range(self.reps(5, 2)):
            started = time.perf_counter()
            kernel = JupyterKernel(self.process_log, wait_ready=True)
            kernel.execute("import pandas", timeout=120)
            samples.append(time.perf_counter() - started)
            kernel.close()
        Results.add(pandas, "jupyter", "Jupyter kernel: start, ready, `import pandas`", samples)

    def process_burst_at_once(self) -> None:
        """Issue 11: 100 process-context creations sent at once (each answered before its worker
        is bound when the pool has none ready), then a first run in each, sent at once too."""
        created = self.results.row("burst_at_once", "Burst: 100 process-context creations sent at once", "time",
                                   "from sending the first to each answer; pool of 2", short="burst at once")
        first_runs = self.results.row("burst_first_runs", "Burst: 100 creations sent at once, then a first run in each", "time",
                                      "from sending the first creation until all 100 runs of `1` answered", short="burst + first runs")
        client = PyKernelClient(self.binary, self.log_path, ("--pool-size", "2"))
        try:
            answered, all_runs = [], []
            for _ in range(self.reps(3, 1)):
                client.wait_for_pool()
                started = time.perf_counter()
                waiting = {client.send("context.create", {"isolation": "process"}) for _ in range(100)}
                contexts = []
                deadline = wait_deadline(120)
                while waiting:  # answered in whatever order
                    message = json.loads(client.channel.read_line(deadline))
                    if message.get("id") in waiting:
                        if "error" in message:
                            raise RuntimeError(f"pykernel error: {message['error']}")
                        waiting.discard(message["id"])
                        contexts.append(message["result"]["id"])
                        answered.append(time.perf_counter() - started)
                client.wait_all([client.send("code.run", {"code": "1", "context": context}) for context in contexts], timeout=120)
                all_runs.append(time.perf_counter() - started)
                for context in contexts:
                    client.call("context.delete", {"id": context})
            Results.add(created, "pykernel", "pykernel process contexts (fork server, pool of 2)", answered)
            Results.add(first_runs, "pykernel", "pykernel process contexts (fork server, pool of 2)", all_runs)
        finally:
            client.close()

    def library_benchmarks(self) -> None:
        output = RESULTS / "library"
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir(parents=True)
        command = ["swift", "package"]
        if self.library_scratch_path:
            command += ["--scratch-path", self.library_scratch_path]
        command += ["--allow-writing-to-directory", str(output), "benchmark", "--target", "KernelBenchmarks",
                    "--format", "jmh", "--path", str(output), "--no-progress"]
        log("running " + " ".join(command) + " (builds Benchmarks/ in release the first time)")
        subprocess.run(command, cwd=BENCH, check=True, stdout=self.process_log, stderr=subprocess.STDOUT,
                       timeout=1800, env=clean_environment())
        exports = sorted(output.glob("*.jmh.json"))
        if not exports:
            raise RuntimeError(f"swift package benchmark wrote no JMH export into {output}")
        units = {"ns": 1e-9, "μs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
        prefix = "package.benchmark.KernelBenchmarks."
        missing = set(self.LIBRARY_ROWS)
        for item in json.loads(exports[-1].read_text()):
            name = item["benchmark"].removeprefix(prefix)
            if name not in self.LIBRARY_ROWS:
                continue
            key, label, scale = self.LIBRARY_ROWS[name]
            row = next(row for row in self.results.rows if row["key"] == key)
            metrics = {"primary": item["primaryMetric"], **item.get("secondaryMetrics", {})}
            if row["kind"] == "memory":
                metric = next((value for title, value in metrics.items() if title.startswith("USS bytes per context")), None)
                samples = [float(value) for value in metric["rawData"][0]] if metric else []
            else:
                metric = metrics.get("Time (wall clock)")
                factor = units.get(metric["scoreUnit"], 1e-6) if metric else 0
                samples = [float(value) * factor / scale for value in metric["rawData"][0]] if metric else []
            if samples:
                Results.add(row, "library", label, samples, reference=True)
                missing.discard(name)
        if missing:
            raise RuntimeError(f"no samples in {exports[-1].name} for the benchmarks " + ", ".join(sorted(missing)))

    # (8) scale: 10,000 contexts, pipelined runs, a context holding 1 GB ----------------------

    SCALE_CONTEXTS = 10_000
    PIPELINE_CONTEXTS = 100
    PIPELINE_RUNS = 1000
    PIPELINE_CODE = "x = sum(range(1000)); print(x)"
    # What a context's globals hold in the release row, each about 1 GB (the ints: 10M ints and
    # their list, ~360 MB): one buffer (a single mmap), many small objects (obmalloc's arenas),
    # many 1-KB objects (glibc's heap, where freed memory is not returned by itself).
    RELEASE_CODES = {
        "`x = bytearray(10**9)`": "x = bytearray(10**9)",
        "`x = list(range(10**7))`": "x = list(range(10**7))",
        "`x = [bytes(1000) for _ in range(10**6)]`": "x = [bytes(1000) for _ in range(10**6)]",
    }

    def scale(self) -> None:
        self.scale_contexts()
        self.scale_pipelined()
        self.scale_release()

    def scale_contexts(self) -> None:
        """10,000 contexts alive in one `pykernel serve`: creation as the count grows, listing,
        memory per context, deletion."""
        count = self.reps(self.SCALE_CONTEXTS, 2000)
        bucket = count // 10
        create = self.results.row("scale_create", f"`context.create` as contexts accumulate (up to {count:,} in one `pykernel serve`)",
                                  "time", "Python client; each sample one round trip", short="create at scale")
        listing = self.results.row("scale_list", f"`context.list` with {count:,} contexts", "time",
                                   "Python client; until the whole response line arrived", short="list at scale")
        memory = self.results.row("scale_memory", f"Memory per context with {count:,} contexts in one `pykernel serve`", "memory",
                                  "USS (private bytes) from /proc/PID/smaps_rollup", short="memory per context at scale")
        client = PyKernelClient(self.binary, self.log_path)
        try:
            client.call("code.run", {"code": "x = 1"})
            small_list, _ = timed_requests(client, "context.list", {}, self.reps(200, 50))
            base_rss, base_uss = memory_of(client.pid)
            samples: list[float] = []
            ids: list[str] = []
            for _ in range(count):
                started = time.perf_counter()
                ids.append(client.create_context())
                samples.append(time.perf_counter() - started)
            empty_rss, empty_uss = memory_of(client.pid)
            listed, response = timed_requests(client, "context.list", {}, self.reps(50, 10))
            listed_contexts = len(json.loads(response)["result"]["contexts"])
            if listed_contexts != count + 1:
                raise RuntimeError(f"context.list listed {listed_contexts} contexts, not {count + 1}")
            pipelined_runs(client, [("code.run", {"code": "x = 1", "context": context}) for context in ids], timeout=300)
            used_rss, used_uss = memory_of(client.pid)
            listed_used, _ = timed_requests(client, "context.list", {}, self.reps(50, 10))
            deletions = []
            for context in ids:
                started = time.perf_counter()
                client.call("context.delete", {"id": context})
                deletions.append(time.perf_counter() - started)
            client.call("code.run", {"code": "pass"})  # after the namespaces' release jobs
            deleted_rss, deleted_uss = memory_of(client.pid)
        finally:
            client.close()
        buckets = [statistics_median(samples[start:start + bucket]) for start in range(0, count, bucket)]
        Results.add(create, "pykernel", f"pykernel, contexts 1–{bucket:,}", samples[:bucket])
        Results.add(create, "pykernel", f"pykernel, contexts {count - bucket + 1:,}–{count:,}", samples[-bucket:], reference=True,
                    detail="median per 1/10th of the contexts: " + ", ".join(format_value(value, "time") for value in buckets))
        Results.add(create, "pykernel", f"pykernel `context.delete`, {count:,} contexts alive → none", deletions, reference=True)
        Results.add(listing, "pykernel", f"pykernel, {count:,} empty contexts", listed)
        Results.add(listing, "pykernel", f"pykernel, {count:,} contexts after one run each", listed_used, reference=True)
        Results.add(listing, "pykernel", "pykernel, 1 context (reference)", small_list, reference=True)
        Results.add(memory, "pykernel", "pykernel, empty contexts", [(empty_uss - base_uss) / count],
                    detail=f"RSS {(empty_rss - base_rss) / count / 1024:.2f} KB; whole process before: {base_rss / 2**20:.1f} MB RSS")
        Results.add(memory, "pykernel", "pykernel, after `x = 1` in each (reference)", [(used_uss - base_uss) / count], reference=True,
                    detail=f"RSS {(used_rss - base_rss) / count / 1024:.2f} KB")
        Results.add(memory, "pykernel", "pykernel, after deleting them all: whole process minus before (reference)",
                    [deleted_uss - base_uss], reference=True, detail=f"RSS {(deleted_rss - base_rss) / 2**20:.2f} MB")

    def scale_pipelined(self) -> None:
        """1,000 runs over 100 contexts, every request written before any answer is read."""
        contexts, runs = self.PIPELINE_CONTEXTS, self.PIPELINE_RUNS
        row = self.results.row("scale_pipelined", f"{runs:,} `code.run` over {contexts} contexts, pipelined", "time",
                               f"`{self.PIPELINE_CODE}`; every request encoded, then written without waiting; from the first write to the last response",
                               short="1,000 pipelined runs")
        reps = self.reps(10, 3)
        # Namespace contexts (the row's pykernel), then process contexts (a reference).
        for isolation, label, reference, cpu_of in (
                (None, f"pykernel, {contexts} contexts in one `pykernel serve`", False, "the server"),
                ("process", f"pykernel, {contexts} process contexts (a forked worker each; reference)", True,
                 "the server (not its workers)")):
            client = PyKernelClient(self.binary, self.log_path)
            try:
                ids = [client.create_context(isolation=isolation) for _ in range(contexts)]
                requests = [("code.run", {"code": self.PIPELINE_CODE, "context": ids[index % contexts]}) for index in range(runs)]
                pipelined_runs(client, requests)  # warm: every context has run the code once
                cpu = cpu_seconds(client.pid)
                samples = [pipelined_runs(client, requests) for _ in range(reps)]
                cpu = (cpu_seconds(client.pid) - cpu) / reps
            finally:
                client.close()
            Results.add(row, "pykernel", label, samples, reference=reference,
                        detail=f"CPU time of {cpu_of}: {format_value(cpu, 'time')} per 1,000 runs")
        workers = [WorkerClient(self.python) for _ in range(contexts)]
        try:
            for worker in workers:
                worker.ping(timeout=60)
            pipelined_workers(workers, self.PIPELINE_CODE, runs)
            cpu = sum(cpu_seconds(worker.pid) for worker in workers)
            samples = [pipelined_workers(workers, self.PIPELINE_CODE, runs) for _ in range(reps)]
            cpu = (sum(cpu_seconds(worker.pid) for worker in workers) - cpu) / reps
        finally:
            for worker in workers:
                worker.close()
        Results.add(row, "worker", f"{contexts} process workers ({runs // contexts} runs each)", samples,
                    detail=f"CPU time of the workers: {format_value(cpu, 'time')} per 1,000 runs")

    def scale_release(self) -> None:
        """A context holding ~1 GB created and deleted: is the memory returned to the system?"""
        row = self.results.row("scale_release", "Memory kept after deleting a context that held ~1 GB", "memory",
                               "RSS of `pykernel serve` after each `context.delete` (after a later run, so the release "
                               "is done) minus before the first of these contexts", short="memory kept after delete")
        reps = self.reps(3, 1)
        client = PyKernelClient(self.binary, self.log_path)
        try:
            client.call("code.run", {"code": "x = 1"})
            start = rss_of(client.pid)
            for label, code in self.RELEASE_CODES.items():
                kept, held, deletes, releases = [], [], [], []
                for _ in range(reps):
                    context = client.create_context()
                    client.call("code.run", {"code": "pass", "context": context})
                    before = rss_of(client.pid)
                    client.call("code.run", {"code": code, "context": context}, timeout=120)
                    held.append(rss_of(client.pid) - before)
                    started = time.perf_counter()
                    client.call("context.delete", {"id": context})
                    deletes.append(time.perf_counter() - started)
                    client.call("code.run", {"code": "pass"}, timeout=120)  # runs after the release
                    releases.append(time.perf_counter() - started)
                    kept.append(rss_of(client.pid) - start)
                Results.add(row, "pykernel", f"pykernel, {label}", kept,
                            detail=f"held {statistics_median(held) / 2**20:,.0f} MB; `context.delete` answered in "
                                   f"{format_value(statistics_median(deletes), 'time')}, released within "
                                   f"{format_value(statistics_median(releases), 'time')} (median)")
        finally:
            client.close()


# ---------------------------------------------------------------------------------------------
# Targets, table, chart
# ---------------------------------------------------------------------------------------------

def entry(rows: list[dict], key: str, system: str, reference: bool = False) -> dict | None:
    for row in rows:
        if row["key"] == key:
            return next((item for item in row["entries"] if item["system"] == system and item["reference"] == reference), None)
    return None


def evaluate_targets(rows: list[dict]) -> list[dict]:
    targets = []

    def target(name: str, measured: str, met: bool | None) -> None:
        targets.append({"target": name, "measured": measured, "met": met})

    creation = entry(rows, "context_creation", "pykernel")
    jupyter = entry(rows, "context_creation", "jupyter")
    worker = entry(rows, "context_creation", "worker")
    if creation:
        target("context creation via the protocol: median ≤ 50 µs", format_value(creation["median"], "time"), creation["median"] <= 50e-6)
    if jupyter and jupyter.get("advantage"):
        target("≥ 1,000× faster than a Jupyter kernel start", f"{jupyter['advantage']:,.0f}×", jupyter["advantage"] >= 1000)
    if worker and worker.get("advantage"):
        target("≥ 100× faster than a process worker", f"{worker['advantage']:,.0f}×", worker["advantage"] >= 100)
    round_trip = entry(rows, "round_trip_pass", "pykernel")
    if round_trip:
        target("`pass` round trip via the protocol: median ≤ 40 µs", format_value(round_trip["median"], "time"), round_trip["median"] <= 40e-6)
    result = entry(rows, "round_trip_result", "pykernel")
    if round_trip and result:
        added = result["median"] - round_trip["median"]
        target("added cost of a result (`1+1` vs `pass` round trip): ≤ 10 µs", format_value(max(added, 0), "time"), added <= 10e-6)
    error = entry(rows, "round_trip_error", "pykernel")
    error_pass = next((item for row in rows if row["key"] == "round_trip_error" for item in row["entries"]
                       if item["system"] == "pykernel" and item["reference"] and "`pass`" in item["label"]), None)
    if error and error_pass:
        target("error round trip (`1/0`, full record): ≤ 2× the `pass` round trip of the same rounds",
               f"{format_value(error['median'], 'time')} ({error['median'] / error_pass['median']:.2f}×)",
               error["median"] <= 2 * error_pass["median"])
    for name in ("loop", "sleep"):
        interrupt = entry(rows, f"interrupt_{name}", "pykernel")
        if interrupt:
            target(f"interrupt latency ({name}): median ≤ 0.1 ms", format_value(interrupt["median"], "time"),
                   interrupt["median"] <= 100e-6)
    for name in TIMEOUT_CODES:
        lateness = entry(rows, f"timeout_{name}", "pykernel", reference=True)
        if lateness:
            target(f"timeout latency ({name}): the server's, deadline → result, median ≤ 0.1 ms",
                   format_value(lateness["median"], "time"), lateness["median"] <= 100e-6)
    throughput = entry(rows, "throughput", "pykernel")
    if throughput:
        mbps = throughput["mb_per_s"]["median"]
        target("200k printed lines: ≥ 15 MB/s received by the client", f"{mbps:.1f} MB/s", mbps >= 15)
    floor = entry(rows, "throughput", "python")
    if throughput and floor:
        ratio = floor["median"] / throughput["median"]
        target("200k printed lines: ≥ plain `python3` into a pipe (issue 15)", f"{ratio:.2f}× its MB/s", ratio >= 1)
    memory = entry(rows, "memory_empty", "pykernel")
    if memory:
        target("memory per empty context: ≤ 16 KB", format_value(memory["median"], "memory"), memory["median"] <= 16 * 1024)
    library = entry(rows, "context_creation", "library", reference=True)
    if library:
        target("context creation through the Swift library: median ≤ 20 µs", format_value(library["median"], "time"),
               library["median"] <= 20e-6)
    else:
        target("context creation through the Swift library: median ≤ 20 µs",
               "not measured in this run (`--library`, or `cd Benchmarks && swift package benchmark`)", None)
    return targets


def format_value(value: float, kind: str) -> str:
    if kind == "memory":
        if value >= 2**20:
            return f"{value / 2**20:.1f} MB"
        return f"{value / 1024:.2f} KB"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms" if value < 0.1 else f"{value * 1e3:.0f} ms"
    return f"{value * 1e6:.1f} µs"


def cell(item: dict, statistic: str, kind: str) -> str:
    if kind == "throughput":
        return f"{item['mb_per_s'][statistic]:.2f} MB/s"
    if kind == "memory" and item["reps"] == 1 and statistic != "median":
        return "–"
    return format_value(item[statistic], kind)


def markdown(report: dict) -> str:
    machine = report["machine"]
    lines = [
        f"Measured {machine['date']} on {machine['cores']} cores ({machine['cpu'] or 'unknown CPU'}, Linux {machine['kernel']}, "
        f"{machine['memory_gib']} GiB), {machine['python']}; {machine['pykernel']} (embedded Python {machine['pykernel_embedded_python']}), "
        f"ipykernel {machine['ipykernel']}, jupyter_client {machine['jupyter_client']}; load average at start "
        f"{machine['load_average_start'][0]:.2f}, at end {machine['load_average_end'][0]:.2f}; "
        f"{'quick pass' if report['quick'] else 'full run'} of {report['duration_s']:.0f} s.",
        "",
        "| Measurement | System | Median | p95 | p99 | Reps | pykernel advantage |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rows"]:
        first = True
        for item in row["entries"]:
            advantage = "baseline" if item["system"] == "pykernel" and not item["reference"] else (
                f"{item['advantage']:,.0f}×" if item.get("advantage") and item["advantage"] >= 10 else
                f"{item['advantage']:.2f}×" if item.get("advantage") else "")
            label = item["label"] + (f" <br><sub>{item['detail']}</sub>" if item.get("detail") else "")
            lines.append(f"| {row['title'] if first else ''} | {label} | {cell(item, 'median', row['kind'])} | "
                         f"{cell(item, 'p95', row['kind'])} | {cell(item, 'p99', row['kind'])} | {item['reps']:,} | {advantage} |")
            first = False
    lines += ["", "pykernel advantage: the alternative's median divided by pykernel's (time, memory), or pykernel's "
              "throughput divided by the alternative's; above 1 means pykernel is better. Throughput p95/p99 are those of "
              "the transfer time (the 95th/99th slowest).", "", "| Target | Measured | Met |", "| --- | --- | --- |"]
    for item in report["targets"]:
        met = "met" if item["met"] else ("—" if item["met"] is None else "**missed**")
        lines.append(f"| {item['target']} | {item['measured']} | {met} |")
    for failure in report.get("failures", []):
        lines += ["", f"**Failed, rows missing from this run:** {failure}"]
    return "\n".join(lines) + "\n"


def chart(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values, colors = [], [], []
    palette = {"jupyter": "#e4803a", "worker": "#4c8fd0", "python": "#9a9a9a"}
    short = {"jupyter": "Jupyter", "worker": "process worker", "python": "plain python3"}
    for row in report["rows"]:
        for item in row["entries"]:
            if item.get("advantage"):
                title = re.sub(r"`", "", row["short"])
                labels.append(f"{title} — {short.get(item['system'], item['system'])}")
                values.append(item["advantage"])
                colors.append(palette.get(item["system"], "#777777"))
    figure, axes = plt.subplots(figsize=(11, 0.38 * len(labels) + 1.6))
    positions = range(len(labels))[::-1]
    axes.barh(list(positions), values, color=colors)
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.set_xscale("log")
    axes.axvline(1, color="black", linewidth=0.8)
    axes.set_xlabel("times better with pykernel (alternative ÷ pykernel, medians; log scale; > 1: pykernel better)")
    for position, value in zip(positions, values):
        axes.text(value, position, f" {value:,.0f}×" if value >= 10 else f" {value:.2f}×", va="center", fontsize=7)
    machine = report["machine"]
    axes.set_title(f"pykernel vs a Jupyter kernel and a process-per-context worker\n{machine['cores']} cores, "
                   f"{machine['python'].split(' (')[0]}, {machine['pykernel'].split(' (')[0]}, {machine['date'][:10]}", fontsize=10)
    axes.set_xlim(right=max(values) * 8 if values else 10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)



# ---------------------------------------------------------------------------------------------
# The added cost of a result (issue 12), builds side by side
# ---------------------------------------------------------------------------------------------

# The last expression's value shown or hidden by `;`: `1+1` is folded to a constant by the
# compiler (the engine compiles the statement again to get its value), `__name__` is not.
RESULT_COST_CODES = ("pass", "1+1", "1+1;", "__name__", "__name__;")


def result_cost(binaries: list[str], reps: int, rounds: int) -> None:
    """Prints, for each pykernel executable, the round trips (the native probe, warm default
    context) of `pass` and of a last expression shown or hidden, and the added cost of a result:
    `1+1` against `pass` (the row of issue 12) and each value against the same code hidden by `;`.
    Every executable and code is measured in each round (a fresh server each), one after the
    other, so that load changes on a shared machine hit them alike. Two tables: the per-round
    medians, and the per-round 10th percentiles (what a request costs when nothing else took the
    CPU: the steadier figure on a loaded machine); each cell is the median over the rounds, with
    the per-round values in brackets."""
    per_round: dict[tuple[str, str], list[list[float]]] = {(b, c): [] for b in binaries for c in RESULT_COST_CODES}
    for round_index in range(rounds):
        for binary in binaries:
            for code in RESULT_COST_CODES:
                samples = probe([binary, "serve"], rpc_line("code.run", {"code": code}), PYKERNEL_RESPONSE,
                                reps // rounds, 200)
                per_round[(binary, code)].append(sorted(samples))
        log(f"round {round_index + 1}/{rounds} done")
    for title, fraction in (("per-round medians", 0.5), ("per-round 10th percentiles", 0.1)):
        print(f"\nRound trips in µs, {title} (median over {rounds} rounds [each round]):\n")
        print("| Build | " + " | ".join(f"`{code}`" for code in RESULT_COST_CODES)
              + " | `1+1` − `pass` | `1+1` − `1+1;` | `__name__` − `__name__;` |")
        print("|---" * (len(RESULT_COST_CODES) + 4) + "|")
        for binary in binaries:
            values = {code: [percentile(batch, fraction) * 1e6 for batch in per_round[(binary, code)]]
                      for code in RESULT_COST_CODES}

            def cell(numbers: list[float]) -> str:
                return f"{statistics_median(numbers):.1f} [{', '.join(f'{v:.0f}' for v in numbers)}]"

            def added(code: str, reference: str) -> str:
                return cell([one - zero for one, zero in zip(values[code], values[reference])])

            print(f"| {binary} | " + " | ".join(cell(values[code]) for code in RESULT_COST_CODES)
                  + f" | {added('1+1', 'pass')} | {added('1+1', '1+1;')} | {added('__name__', '__name__;')} |")


# ---------------------------------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~1-minute pass with fewer repetitions")
    parser.add_argument("--pykernel", help="use this pykernel executable instead of building one")
    parser.add_argument("--scratch-path", help="swift build --scratch-path for the release build (default: the root's .build)")
    parser.add_argument("--budget", type=float, default=None, help="give up after this many seconds (default 900, quick 300)")
    parser.add_argument("--library", action=argparse.BooleanOptionalAction, default=None,
                        help="also run the Swift library benchmarks (swift package benchmark, Benchmarks/Package.swift) "
                             "and add their rows; default: on for a full run, off with --quick")
    parser.add_argument("--library-scratch-path", help="swift package --scratch-path for the library benchmarks (default: Benchmarks/.build)")
    parser.add_argument("--only", action="append", metavar="WORD",
                        help="run only the sections whose name contains WORD (repeatable; e.g. `--only scale`); "
                             "the results go to Benchmarks/results/ only, not to Benchmarks/latest/")
    parser.add_argument("--wait-idle", type=float, default=0, metavar="SECONDS",
                        help="first wait up to this long for the 1-minute load average to fall below 1 (a shared machine)")
    parser.add_argument("--result-cost", nargs="+", metavar="PYKERNEL",
                        help="only compare the added cost of a result (`1+1` vs `pass`) of these pykernel executables "
                             "side by side (no build, no virtualenv), e.g. a build before and after a change")
    parser.add_argument("--result-cost-reps", type=int, default=6000, metavar="N",
                        help="requests per code and executable for --result-cost (default 6000, over 6 rounds)")
    return parser.parse_args(argv)


def main() -> None:
    arguments = parse(sys.argv[1:])
    if arguments.result_cost:
        result_cost(arguments.result_cost, arguments.result_cost_reps, rounds=6)
        return
    if os.environ.get(STAGE_VARIABLE) != "measure":
        bootstrap(arguments)
        return

    budget = arguments.budget or (300 if arguments.quick else 900)

    def stop(signum, _frame):
        if signum == signal.SIGALRM:
            raise Deadline(f"the run exceeded its {budget:.0f} s budget")
        raise KeyboardInterrupt(f"signal {signum}")

    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(number, stop)
    # Ctrl-C raises KeyboardInterrupt even when started in the background (where SIGINT is ignored,
    # which the children would inherit: the worker's interrupt rows rely on it).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    atexit.register(REAPER.kill_all)
    if arguments.wait_idle:
        waited = time.monotonic()
        while os.getloadavg()[0] >= 1 and time.monotonic() - waited < arguments.wait_idle:
            log(f"waiting for an idle machine (load average {os.getloadavg()[0]:.2f})")
            time.sleep(15)
    signal.alarm(int(budget))
    bench = Bench(arguments)
    try:
        report = bench.run_all()
    except BaseException:
        log("failed; killing every process this run started")
        raise
    finally:
        signal.alarm(0)
        REAPER.kill_all()

    table = markdown(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "latest.md").write_text(table)
    chart(report, RESULTS / "ratios.png")
    if not report["only"]:
        LATEST.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RESULTS / "latest.md", LATEST / "results.md")
        shutil.copyfile(RESULTS / "ratios.png", LATEST / "ratios.png")
    print(table)
    log(f"done in {report['duration_s']:.0f} s: {RESULTS.relative_to(ROOT)}/latest.{{json,md}}, ratios.png"
        + ("" if report["only"] else f"; copies in {LATEST.relative_to(ROOT)}/"))
    if report["failures"]:
        sys.exit("failed: " + "; ".join(report["failures"]))


if __name__ == "__main__":
    main()
