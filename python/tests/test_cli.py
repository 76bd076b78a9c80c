"""`pykernel run` and `pykernel --version`: the program behaves like python3 for a file, works when
copied alone to another folder, and imports from a virtualenv given with --venv."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

PYTHON311 = "/usr/bin/python3.11"


def run(binary, *args, cwd=None, timeout=60, env=None):
    # surrogateescape: bytes that are not UTF-8 (a lone surrogate printed) compare as they are.
    return subprocess.run([binary, *args], capture_output=True, text=True, errors="surrogateescape", cwd=cwd,
                          timeout=timeout, env=env)


def test_version_names_pykernel_and_the_embedded_python(pykernel_bin):
    for args in (["--version"], ["serve", "--version"], ["run", "--version"], ["mcp", "--version"]):
        done = run(pykernel_bin, *args)
        assert done.returncode == 0, args
        assert done.stdout.startswith("pykernel ") and "(Python 3.11." in done.stdout, args
    # Listed once in the help.
    assert run(pykernel_bin, "--help").stdout.count("--version") == 1


def test_pykernel_without_a_command_is_a_usage_error(pykernel_bin):
    """`pykernel` alone printed the help on stdout and exited 0, as `pykernel --help` does: a
    command line missing its command is a usage error (status 64, the usage on stderr)."""
    done = run(pykernel_bin)
    assert (done.returncode, done.stdout) == (64, ""), done.stderr
    assert "Give a command: run, serve or mcp." in done.stderr and "Usage: pykernel" in done.stderr
    asked = run(pykernel_bin, "--help")
    assert (asked.returncode, asked.stderr) == (0, "") and "SUBCOMMANDS:" in asked.stdout


@pytest.mark.parametrize("command", ["serve", "mcp"])
def test_the_help_lists_every_option_with_the_range_it_takes(pykernel_bin, command):
    # --timeout-grace was hidden though protocol.md documents it, and no range was said.
    import re

    options = " ".join(run(pykernel_bin, command, "--help").stdout.split()).split("OPTIONS:")[1]
    described = dict(re.findall(r"(--[a-z-]+) <[a-z-]+> (.*?)(?= --[a-z-]+ <| --version| -h, --help)", options))
    ranges = {"--pool-size": ("0 to 64", "65"), "--timeout-grace": ("0 to 3600", "3601"),
              "--output-interval": ("0 to 3600", "3601")}
    for option, (said, beyond) in ranges.items():
        assert said in described.get(option, ""), (option, described)
        refused = run(pykernel_bin, command, option, beyond)
        assert refused.returncode == 64 and option in refused.stderr, (option, refused.stderr)


def test_run_prints_like_python3_including_fd_output_in_order(pykernel_bin, tmp_path):
    program = tmp_path / "prog.py"
    program.write_text(
        "import os, subprocess, sys\n"
        "print('a')\n"
        "os.system('echo b')\n"
        "print('c')\n"
        "subprocess.run(['echo', 'd'])\n"
        "os.write(1, b'e\\n')\n"
        "print('f', end='')\n"
        "print()\n"
        "print('to stderr', file=sys.stderr)\n"
    )
    # Unbuffered, every write in program order; buffered (a pipe, as python3 buffers it), the
    # prints at the end, after the descriptor writes. Not left to the environment the tests run in.
    for unbuffered, expected in (("1", "a\nb\nc\nd\ne\nf\n"), (None, "b\nd\ne\na\nc\nf\n")):
        env = _environment(PYTHONUNBUFFERED=unbuffered)
        theirs = run(PYTHON311, str(program), env=env)
        done = run(pykernel_bin, "run", str(program), env=env)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, "to stderr\n"), unbuffered
        assert (done.returncode, done.stdout, done.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), unbuffered


def test_run_exits_1_with_the_traceback_python3_prints(pykernel_bin, tmp_path):
    program = tmp_path / "fail.py"
    program.write_text("counter = 1\nprint('before')\nprint(countr)\n")
    ours = run(pykernel_bin, "run", str(program))
    theirs = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True)
    assert ours.returncode == theirs.returncode == 1
    assert ours.stdout == theirs.stdout == "before\n"
    assert ours.stderr == theirs.stderr
    assert "Did you mean: 'counter'?" in ours.stderr


def test_run_c_and_sys_exit_status(pykernel_bin):
    assert run(pykernel_bin, "run", "-c", "import sys; sys.exit(3)").returncode == 3
    done = run(pykernel_bin, "run", "-c", "raise SystemExit('bye')")
    assert (done.returncode, done.stderr) == (1, "bye\n")
    assert run(pykernel_bin, "run", "-c", "exit()").returncode == 0
    # -c: no flush after the code, so the message follows what sys.stderr held, on that stream.
    code = "import sys; sys.stderr.write('held '); sys.exit('bye')"
    theirs = subprocess.run([PYTHON311, "-c", code], capture_output=True, text=True)
    ours = run(pykernel_bin, "run", "-c", code)
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr) == (1, "held bye\n")


SYSTEM_EXIT_CODES = [
    # A str that reads as a status, None or False is still printed: status 1.
    "import sys; sys.exit('0')", "import sys; sys.exit('5')", "import sys; sys.exit('')",
    "import sys; sys.exit('None')", "import sys; sys.exit('False')", "import sys; sys.exit('True')",
    # Integers as C's exit() takes them: bool, negative, past 255, past a C int, past a C long (-1).
    "import sys; sys.exit(True)", "import sys; sys.exit(False)", "import sys; sys.exit(-1)",
    "import sys; sys.exit(256 + 7)", "import sys; sys.exit(2**40 + 9)", "import sys; sys.exit(2**63)",
    "import sys; sys.exit(-2**63 - 1)", "import sys; sys.exit(2**63 - 1)", "import sys; sys.exit(1.5)",
    "import sys; sys.exit(None)", "raise SystemExit(1, 2)",
    # A tuple given to sys.exit() is the code python3 reads as the program ends (printed, status
    # 1), not what the exception made of it (`SystemExit(3)`), unless an except or finally of the
    # code made the exception first.
    "import sys; sys.exit(())", "import sys; sys.exit((3,))", "import sys; sys.exit(('a',))",
    "import sys; sys.exit((1, 'b'))", "import sys\ntry:\n    sys.exit((3,))\nfinally:\n    print('finally')",
    # A subclass of SystemExit, an int subclass whose str() is not its value, a code changed after.
    "class E(SystemExit): pass\nraise E(4)",
    "class E(SystemExit):\n    def __str__(self): return '9'\nraise E('text')",
    "class I(int):\n    def __str__(self): return 'eleven'\nraise SystemExit(I(11))",
    "class I(int):\n    def __index__(self): return 3\n    def __int__(self): return 3\nraise SystemExit(I(12))",
    "e = SystemExit(3)\ne.code = None\nraise e", "e = SystemExit(3)\ne.code = 'text'\nraise e",
    "e = SystemExit('text')\ne.code = 7\nraise e",
    # A code python3 cannot read: the exception itself is printed.
    "class E(SystemExit):\n    @property\n    def code(self): raise ValueError\n    def __str__(self): return 'the exception'\nraise E(5)",
    # Raised by the program's sys.excepthook.
    "import sys\nclass E(SystemExit): pass\nsys.excepthook = lambda *a: (_ for _ in ()).throw(E(8))\n1/0",
]


@pytest.mark.parametrize("code", SYSTEM_EXIT_CODES)
def test_run_exits_with_the_status_python3_takes_from_system_exit_code(pykernel_bin, tmp_path, code):
    """python3's status comes from `SystemExit.code` (`_Py_HandleSystemExit`), whatever the
    exception's class or str(): None is 0, an int its value as C's exit() takes it, anything else
    printed (status 1)."""
    program = tmp_path / "exits.py"
    program.write_text(code + "\n")
    theirs = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True)
    ours = run(pykernel_bin, "run", str(program))
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


_LOUD = "class Loud:\n    def __str__(self):\n        print('str called', flush=True)\n        return 'loud'\n"
STR_CALL_PROGRAMS = {
    # A hook that prints no str(): python3 calls none.
    "hook": _LOUD + "import sys\nsys.excepthook = lambda *a: print('hook')\nraise ValueError(Loud())\n",
    # The code of a SystemExit printed as the program exits: once.
    "system_exit": _LOUD + "raise SystemExit(Loud())\n",
    "hook_exits": _LOUD + "import sys\ndef hook(*a):\n    raise SystemExit(Loud())\nsys.excepthook = hook\n1/0\n",
    # The default hook prints it: once.
    "default_hook": _LOUD + "raise ValueError(Loud())\n",
}


@pytest.mark.parametrize("name", sorted(STR_CALL_PROGRAMS))
def test_run_calls_str_of_an_uncaught_exception_as_often_as_python3(pykernel_bin, tmp_path, name):
    program = tmp_path / "loud.py"
    program.write_text(STR_CALL_PROGRAMS[name])
    theirs = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True)
    ours = run(pykernel_bin, "run", str(program))
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_run_prints_an_uncaught_exception_whole_past_the_result_limit(pykernel_bin, tmp_path):
    """A served record is cut at `max_output_bytes` (1 MiB by default); a program's traceback is
    printed whole, as python3 prints it."""
    program = tmp_path / "big.py"
    program.write_text("raise ValueError('x' * 3_000_000)\n")
    theirs = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True)
    ours = run(pykernel_bin, "run", str(program))
    assert len(ours.stderr) > 3_000_000
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_run_prints_a_tuple_given_to_sys_exit_as_python3_for_every_kind_of_program(pykernel_bin, tmp_path):
    """-c, a program read from stdin, a directory's `__main__` (runpy's frames under it), a file
    python3 parses from its bytes (a null byte after the exit): `sys.exit((3,))` prints `(3,)`,
    status 1."""
    code = "import sys; sys.exit((3,))\n"
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text(code)
    (tmp_path / "null.py").write_bytes(code.encode() + b"\0\n")
    for args, stdin in ((["-c", code], None), (["-"], code), (["app"], None), (["null.py"], None)):
        theirs = subprocess.run([PYTHON311, *args], input=stdin, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        ours = subprocess.run([pykernel_bin, "run", *args], input=stdin, capture_output=True, text=True, cwd=tmp_path,
                              timeout=60)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args
        assert (theirs.returncode, theirs.stderr) == (1, "(3,)\n"), args


def test_a_served_system_exit_record_is_its_name_value_and_traceback(kernel):
    """The status `pykernel run` takes from the code is not part of the wire's record."""
    result = kernel.run_code("class E(SystemExit): pass\nraise E(4)")
    assert (result.error.name, result.error.value) == ("E", "4")
    assert result.error.traceback.endswith("E: 4\n")
    assert set(kernel.call("code.run", {"code": "import sys; sys.exit('5')"})["error"]) == {"name", "value", "traceback"}


def test_run_timeout_stops_the_code(pykernel_bin):
    done = run(pykernel_bin, "run", "--timeout", "0.5", "-c", "print('start', flush=True)\nwhile True: pass")
    assert done.returncode == 1
    assert done.stdout == "start\n"
    assert done.stderr.endswith("TimeoutError: execution exceeded the 0.5 s timeout\n")


def test_run_timeout_stops_a_str_that_waits_as_the_exception_is_printed_as_ctrl_c_stops_python3(pykernel_bin, tmp_path):
    """The exception's `__str__`, called as the uncaught exception is printed, ran after the run's
    stop had ended: a sleep there ignored `--timeout` (the program ran on until it returned). It is
    stopped, and the program ends as python3 does when Ctrl-C hits there (its printer shows
    `<exception str() failed>`, status 1)."""
    program = tmp_path / "slow_str.py"
    program.write_text("import time\nclass E(Exception):\n    def __str__(self):\n"
                       "        print('describing', flush=True)\n        time.sleep(30)\nraise E()\n")
    python3 = subprocess.Popen([PYTHON311, str(program)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert python3.stdout.readline() == "describing\n"
    python3.send_signal(signal.SIGINT)
    _, theirs = python3.communicate(timeout=60)
    ours = run(pykernel_bin, "run", "--timeout", "0.5", str(program), timeout=20)
    assert (ours.returncode, ours.stdout, ours.stderr) == (python3.returncode, "describing\n", theirs)
    assert theirs.endswith("E: <exception str() failed>\n"), theirs


@pytest.mark.parametrize("program, reported", [
    # An atexit handler: reported as python3 reports it, and the handlers registered before it still run.
    ("import atexit, threading\natexit.register(print, 'earlier handler')\n"
     "atexit.register(lambda: (print('waiting', flush=True), threading.Event().wait()))\n",
     "Exception ignored in atexit callback: <function <lambda>"),
    # The wait for a thread that is not a daemon (threading._shutdown).
    ("import threading\nthreading.Thread(target=threading.Event().wait).start()\nprint('waiting', flush=True)\n",
     "Exception ignored in: <module 'threading'"),
    # A global's __del__ as the program's globals are freed.
    ("import threading\nclass Slow:\n    def __del__(self):\n        print('waiting', flush=True)\n"
     "        threading.Event().wait()\nslow = Slow()\n", "Exception ignored in: <function Slow.__del__"),
])
def test_run_timeout_stops_the_end_of_the_program(pykernel_bin, tmp_path, program, reported):
    """What python3 runs after a file's last line (atexit handlers, the wait for threads that are
    not daemons, the globals' `__del__`) ran with no deadline: a program waiting there ran for ever
    despite `--timeout`. It is stopped at the program's deadline, its TimeoutError reported where
    it was raised as python3 reports a KeyboardInterrupt there, and exits with a timeout's status."""
    path = tmp_path / "slow_end.py"
    path.write_text(program)
    done = run(pykernel_bin, "run", "--timeout", "0.5", str(path), timeout=10)
    assert done.returncode == 1, done.stderr
    assert "waiting\n" in done.stdout
    assert reported in done.stderr
    assert done.stderr.endswith("TimeoutError: execution exceeded the 0.5 s timeout\n"), done.stderr
    assert done.stderr.count("TimeoutError") == 1, done.stderr


def test_run_timeout_is_one_deadline_for_the_program_and_its_end(pykernel_bin):
    """The end of a program counts from the program's start: a program stopped by its timeout has
    its atexit handlers run under that stop, not with a time of their own (a quick one runs, a
    waiting one is stopped at the stop's repeat), and one that ends just before its deadline gets
    what is left of it. Status 1 both ways."""
    code = ("import atexit, threading, time\natexit.register(lambda: (print('waiting', flush=True), threading.Event().wait()))\n"
            "atexit.register(print, 'quick handler')\ntime.sleep(30)\n")
    done = run(pykernel_bin, "run", "--timeout", "0.5", "-c", code, timeout=10)
    assert done.returncode == 1, done.stderr
    assert done.stdout == "quick handler\nwaiting\n"
    assert done.stderr.count("TimeoutError: execution exceeded the 0.5 s timeout\n") == 2, done.stderr
    assert "Exception ignored in atexit callback" in done.stderr
    # The program itself ends in time, its end not: stopped at the program's deadline (1 s from
    # its start), not at one of its own (1 s after the program's 0.9 s, at 1.9 s or later).
    code = ("import atexit, threading, time\nstart = time.monotonic()\n"
            "def wait():\n    try:\n        threading.Event().wait()\n    finally:\n"
            "        print(f'{time.monotonic() - start:.2f}', flush=True)\n"
            "atexit.register(wait)\ntime.sleep(0.9)\n")
    done = run(pykernel_bin, "run", "--timeout", "1", "-c", code, timeout=10)
    assert done.returncode == 1, done.stderr
    assert done.stderr.endswith("TimeoutError: execution exceeded the 1 s timeout\n"), done.stderr
    assert float(done.stdout) < 1.6, done.stdout


def test_run_timeout_of_code_that_swallows_its_stops_ends_the_program_without_an_engine_error(pykernel_bin):
    """Code that catches every stop is answered at the grace period; the end of the program was
    then refused (`Error: interpreter_busy: ...` on stderr). The program ends there, status 1."""
    code = ("import atexit, threading\natexit.register(print, 'not run')\nwhile True:\n"
            "    try:\n        threading.Event().wait()\n    except BaseException:\n        pass\n")
    done = run(pykernel_bin, "run", "--timeout", "0.1", "-c", code, timeout=10)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("TimeoutError: execution exceeded the 0.1 s timeout and did not stop within the grace period"), done.stderr
    assert "interpreter_busy" not in done.stderr, done.stderr


def test_binary_copied_alone_still_works(pykernel_bin, tmp_path):
    lonely = tmp_path / "elsewhere" / "pykernel"
    lonely.parent.mkdir()
    shutil.copy2(pykernel_bin, lonely)
    done = run(str(lonely), "run", "-c", "import json; print(json.dumps({'a': 1}))", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"a": 1}\n'


def test_venv_packages_are_importable(pykernel_bin, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([PYTHON311, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / "python3.11" / "site-packages"
    (site / "only_in_this_venv.py").write_text("WHERE = 'venv'\n")
    code = "import only_in_this_venv, sys; print(only_in_this_venv.WHERE, sys.prefix)"
    done = run(pykernel_bin, "run", "--venv", str(venv), "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"venv {venv}\n"
    env = dict(os.environ, VIRTUAL_ENV=str(venv))
    served = subprocess.run(
        [pykernel_bin, "serve"], input='{"jsonrpc":"2.0","id":1,"method":"code.run","params":{"code":"import only_in_this_venv"}}\n',
        capture_output=True, text=True, env=env, timeout=60)
    assert '"status":"ok"' in served.stdout, served.stdout
    without = run(pykernel_bin, "run", "-c", "import only_in_this_venv")
    assert without.returncode == 1 and "ModuleNotFoundError" in without.stderr


# What the venv's python3 prints of itself, and the environment it finds: run by the shell
# (`process.exec`, a session) and by `subprocess` in Python (a context's run, `process.code_run`).
VENV_PROBE = ("import os, sys; print(sys.prefix, os.environ.get('VIRTUAL_ENV'), os.environ.get('PYTHONHOME'),"
              " os.environ['PATH'].split(':').count(os.path.join(sys.prefix, 'bin')))")
RUN_PROBE = ("import os, subprocess, sys; print(sys.executable, os.environ.get('VIRTUAL_ENV'), os.environ.get('PYTHONHOME'),"
             " os.environ['PATH'].split(':')[0]);"
             f" print(subprocess.run(['python3', '-c', {VENV_PROBE!r}], capture_output=True, text=True).stdout, end='')")


def check_the_venv_is_activated_for_everything_served(client, venv):
    """Every process the server and its contexts start sees the venv activated, as after
    `source <venv>/bin/activate`: python3 on PATH is the venv's, VIRTUAL_ENV names it, PATH has
    its bin once (first), no PYTHONHOME."""
    activated = f"{venv} {venv} None 1\n"
    done = client.exec(f"python3 -c {shlex.quote(VENV_PROBE)}")
    assert (done.exit_code, done.stdout) == (0, activated), done.stderr
    client.create_session("venv")
    done = client.execute_session_command("venv", f"python3 -c {shlex.quote(VENV_PROBE)}")
    assert (done.exit_code, done.stdout) == (0, activated), done.stderr
    client.delete_session("venv")
    # A per-command environment still wins.
    done = client.exec("python3 -c 'import sys; print(sys.prefix == sys.base_prefix)'", env={"PATH": "/usr/bin:/bin"})
    assert (done.exit_code, done.stdout) == (0, "True\n"), done.stderr
    in_the_run = f"{venv}/bin/python3 {venv} None {venv}/bin\n" + activated
    done = client.code_run(RUN_PROBE)
    assert (done.exit_code, done.stdout) == (0, in_the_run), done.stderr
    for isolation in ("namespace", "process"):
        context = client.create_context(isolation=isolation)
        result = client.run_code(RUN_PROBE, context)
        assert (result.error, result.stdout) == (None, in_the_run), isolation
        client.delete_context(context)


def test_serve_with_a_venv_activates_it_for_every_process_it_starts(pykernel_bin, tmp_path):
    """`--venv` gave the contexts and `process.code_run` the venv's Python, but not the commands
    and subprocesses: `process.exec("pip install x")` installed into the system's Python and
    `python3 -c 'import x'` did not find the venv's packages, nor did `subprocess.run(["python3",
    ...])` in a run. The server now starts with the venv activated. A relative `--venv` is the
    start directory's (`process.code_run` with a `cwd` elsewhere could not start its python3),
    and a `PYTHONHOME` the server inherited is dropped, as `activate` drops it."""
    venv = tmp_path / "venv"
    subprocess.run([PYTHON311, "-m", "venv", "--without-pip", str(venv)], check=True)
    from pykernel import PyKernel

    env = dict(os.environ, PYTHONHOME="/usr")
    env.pop("VIRTUAL_ENV", None)
    with PyKernel(pykernel_bin, args=["--venv", "venv"], cwd=tmp_path, env=env) as client:
        check_the_venv_is_activated_for_everything_served(client, venv)
        done = client.code_run("import sys; print(sys.prefix)", cwd="/")
        assert (done.exit_code, done.stdout) == (0, f"{venv}\n"), done.stderr
    assert client.returncode == 0


def test_serve_started_in_the_activated_venv_does_not_activate_it_again(pykernel_bin, tmp_path):
    """Started from a shell where the venv is activated (`$VIRTUAL_ENV`, its bin first on PATH),
    with or without `--venv`: PATH has the venv's bin once."""
    venv = tmp_path / "venv"
    subprocess.run([PYTHON311, "-m", "venv", "--without-pip", str(venv)], check=True)
    from pykernel import PyKernel

    env = dict(os.environ, VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{os.environ['PATH']}")
    env.pop("PYTHONHOME", None)
    for args in ([], ["--venv", str(venv)]):
        with PyKernel(pykernel_bin, args=args, env=env) as client:
            check_the_venv_is_activated_for_everything_served(client, venv)
        assert client.returncode == 0


def test_a_venv_that_is_not_one_is_refused_at_start(pykernel_bin, tmp_path):
    """`--venv` naming no virtual environment (a typo, a directory without bin/python3) stops the
    program with a message: the code would run without the packages it expects (it did, silently)."""
    (tmp_path / "empty").mkdir()
    for path in (str(tmp_path / "missing"), str(tmp_path / "empty")):
        for command in (["run", "--venv", path, "-c", "pass"], ["serve", "--venv", path], ["mcp", "--venv", path]):
            done = subprocess.run([pykernel_bin, *command], input="", capture_output=True, text=True, timeout=60)
            assert done.returncode == 64, (command, done.stderr)
            assert f"--venv: {path} is not a virtual environment" in done.stderr, done.stderr
            assert done.stdout == ""


def test_a_virtual_env_variable_that_is_no_venv_is_refused_by_servers_and_ignored_by_run(pykernel_bin, tmp_path):
    """README: `--venv` defaults to `$VIRTUAL_ENV` and must be a virtual environment. serve and mcp
    refuse a `$VIRTUAL_ENV` that is not one as they refuse such a `--venv` (they started and ran
    without its packages, silently); `pykernel run` acts like python3, which ignores the variable."""
    (tmp_path / "empty").mkdir()
    venv = tmp_path / "venv"
    subprocess.run([PYTHON311, "-m", "venv", "--without-pip", str(venv)], check=True)
    for path in (str(tmp_path / "missing"), str(tmp_path / "empty")):
        env = dict(os.environ, VIRTUAL_ENV=path)
        for command in ("serve", "mcp"):
            done = subprocess.run([pykernel_bin, command], input="", capture_output=True, text=True, env=env, timeout=60)
            assert done.returncode == 64, (command, done.stderr)
            assert f"VIRTUAL_ENV: {path} is not a virtual environment" in done.stderr, done.stderr
            assert done.stdout == ""
            # An explicit --venv is what counts then.
            given = subprocess.run([pykernel_bin, command, "--venv", str(venv)], input="", capture_output=True, text=True,
                                   env=env, timeout=60)
            assert given.returncode == 0, (command, given.stderr)
        code = "import sys; print(sys.prefix == sys.base_prefix, sys.argv)"
        ours = subprocess.run([pykernel_bin, "run", "-c", code, "a"], capture_output=True, text=True, env=env, timeout=60)
        theirs = subprocess.run([PYTHON311, "-c", code, "a"], capture_output=True, text=True, env=env, timeout=60)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr) == (0, "True ['-c', 'a']\n", "")
    # Set but empty: as unset.
    done = subprocess.run([pykernel_bin, "serve"], input='{"jsonrpc":"2.0","id":1,"method":"kernel.info"}\n', capture_output=True,
                          text=True, env=dict(os.environ, VIRTUAL_ENV=""), timeout=60)
    assert done.returncode == 0 and '"result"' in done.stdout, done.stderr
    # A $VIRTUAL_ENV that is one: `run` uses it, as that environment's own python3 would.
    done = subprocess.run([pykernel_bin, "run", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                          env=dict(os.environ, VIRTUAL_ENV=str(venv)), timeout=60)
    assert (done.returncode, done.stdout) == (0, f"{venv}\n"), done.stderr


def test_a_duration_flag_out_of_range_is_a_usage_error(pykernel_bin):
    """`--timeout-grace` outside 0...3600 s (a huge number, infinity, NaN) stops serve and mcp with
    status 64 and the range, as every other bad flag: 1e16 and `inf` killed the program with
    SIGILL (a Double converted to Int64), and 3601 exited 1 from the engine's own check."""
    for command in ("serve", "mcp"):
        for value in ("1e16", "inf", "1e300", "nan", "3601", "-1"):
            done = subprocess.run([pykernel_bin, command, f"--timeout-grace={value}"], input="", capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 64, (command, value, done.returncode, done.stderr)
            assert "--timeout-grace must be between 0 and 3600 seconds." in done.stderr, done.stderr
            assert done.stdout == ""
    # `pykernel run --timeout`: as a run's `timeout` on the wire, past about 30 years is none (it crashed too).
    for value in ("1e16", "1e300", "inf"):
        done = run(pykernel_bin, "run", f"--timeout={value}", "-c", "print('ran')")
        assert (done.returncode, done.stdout, done.stderr) == (0, "ran\n", ""), value
    # NaN is no number of seconds (it was said to be negative).
    done = run(pykernel_bin, "run", "--timeout=nan", "-c", "print('ran')")
    assert done.returncode == 64 and "--timeout must be a number of seconds." in done.stderr


def test_a_negative_number_given_to_a_numeric_flag_is_refused_for_its_range(pykernel_bin):
    """`--pool-size -5` (the value as an argument of its own) says what `--pool-size=-5` says: the
    range, exit 64; it said "Missing value for '--pool-size <pool-size>'" (-5 read as an option)."""
    cases = [
        (["serve", "--pool-size", "-5"], "--pool-size must be between 0 and 64."),
        (["mcp", "--pool-size", "-5"], "--pool-size must be between 0 and 64."),
        (["serve", "--output-interval", "-1"], "--output-interval must be between 0 and 3600 seconds."),
        (["serve", "--timeout-grace", "-1"], "--timeout-grace must be between 0 and 3600 seconds."),
        (["mcp", "--max-output-bytes", "-1"], "--max-output-bytes must not be negative."),
        (["mcp", "--max-image-bytes", "-1"], "--max-image-bytes must not be negative."),
        (["run", "--timeout", "-1", "-c", "pass"], "--timeout must not be negative."),
    ]
    for command, reason in cases:
        for given in (command, [command[0], f"{command[1]}={command[2]}", *command[3:]]):
            done = subprocess.run([pykernel_bin, *given], input="", capture_output=True, text=True, timeout=60)
            assert done.returncode == 64, (given, done.stderr)
            assert reason in done.stderr and "Missing value" not in done.stderr, (given, done.stderr)
    # A value that is an option is still no number.
    done = subprocess.run([pykernel_bin, "serve", "--pool-size", "--isolation", "process"], input="", capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 64 and "--pool-size" in done.stderr, done.stderr


def test_an_entrypoint_that_cannot_start_is_said_on_stderr(pykernel_bin, tmp_path):
    """`pykernel serve -- CMD` whose CMD is missing or not executable exits 1 saying why (it exited
    1 without a word)."""
    for command in ("no-such-command-for-pykernel", str(tmp_path)):
        done = subprocess.run([pykernel_bin, "serve", "--", command], input='{"jsonrpc":"2.0","id":1,"method":"kernel.info"}\n',
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 1
        assert f"cannot start the entrypoint: the entrypoint command '{command}' was not found" in done.stderr, done.stderr


def test_run_sets_argv_and_file_like_python3(pykernel_bin, tmp_path):
    program = tmp_path / "args.py"
    program.write_bytes(b"\xef\xbb\xbfimport sys\nprint(sys.argv[1:], __file__ == sys.argv[0])\n")
    ours = run(pykernel_bin, "run", str(program), "x", "y z", "q'\\u")
    theirs = subprocess.run([PYTHON311, str(program), "x", "y z", "q'\\u"], capture_output=True, text=True)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    with_c = run(pykernel_bin, "run", "-c", "import sys; print(sys.argv)", "a", "b")
    assert with_c.stdout == "['-c', 'a', 'b']\n"
    # After -c every argument is the code's, a `--` too (pykernel's parser took the first as its own).
    for arguments in (["--", "-x"], ["a", "--", "b"], ["--", "a", "--", "b"], ["--", "--"]):
        ours = run(pykernel_bin, "run", "-c", "import sys; print(sys.argv)", *arguments)
        theirs = subprocess.run([PYTHON311, "-c", "import sys; print(sys.argv)", *arguments], capture_output=True, text=True)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), arguments


def test_run_matches_python3_on_the_traceback_corpus(pykernel_bin, tmp_path):
    """stdout, stderr and exit status of `pykernel run prog.py` equal `python3.11 prog.py`'s."""
    # (test_traceback_fidelity compares the same with a fixed hash seed and UTF-8 mode; this one
    # in the environment the tests run in.) Each program in a directory of its own, four at a time.
    from concurrent.futures import ThreadPoolExecutor

    corpus = os.path.join(os.path.dirname(__file__), "traceback_corpus")
    names = sorted(name for name in os.listdir(corpus) if name.endswith(".py"))

    def differs(name):
        directory = tmp_path / name[:-3]
        directory.mkdir()
        shutil.copy(os.path.join(corpus, name), directory / "prog.py")
        ours = run(pykernel_bin, "run", "prog.py", cwd=directory)
        theirs = subprocess.run([PYTHON311, "prog.py"], capture_output=True, text=True, errors="surrogateescape",
                                cwd=directory)
        return (ours.returncode, ours.stdout, ours.stderr) != (theirs.returncode, theirs.stdout, theirs.stderr)

    with ThreadPoolExecutor(4) as pool:
        differences = [name for name, different in zip(names, pool.map(differs, names)) if different]
    assert differences == []


def test_a_replaced_sys_stdout_does_not_swallow_later_runs(kernel):
    kernel.run_code("import sys, io\nsys.stdout = io.StringIO()")
    assert kernel.run_code("print('visible')").stdout == "visible\n"
    other = kernel.create_context()
    assert kernel.run_code("print('here too')", context=other).stdout == "here too\n"


def test_a_file_run_keeps_its_replaced_stdout_for_threads_and_atexit_as_python3(pykernel_bin, tmp_path):
    # Cells get the engine's streams back at their end; a file run, like python3, keeps the
    # replacement for what runs after its last line: a thread joined at exit, an atexit handler.
    program = tmp_path / "prog.py"
    program.write_text(
        "import atexit, sys, threading\n"
        "def late():\n"
        "    threading.main_thread().join()\n"
        "    print('thread after the last line')\n"
        "threading.Thread(target=late).start()\n"
        "atexit.register(lambda: print('at exit'))\n"
        "sys.stdout = open('log.txt', 'w')\n"
        "print('replaced')\n"
    )
    ours = run(pykernel_bin, "run", "prog.py", cwd=tmp_path)
    ours_log = (tmp_path / "log.txt").read_text()
    theirs = subprocess.run([PYTHON311, "prog.py"], capture_output=True, text=True, cwd=tmp_path)
    theirs_log = (tmp_path / "log.txt").read_text()
    assert (ours.returncode, ours.stdout, ours.stderr, ours_log) == (theirs.returncode, theirs.stdout, theirs.stderr, theirs_log)
    assert theirs_log == 'replaced\nthread after the last line\nat exit\n'


def test_each_context_is_main_while_it_runs(kernel):
    """sys.modules['__main__'] is the running context's module, as python3's is the program:
    pickle finds the classes a context defined and typing resolves its string annotations (a
    program's end relies on it being let go of: see program_end/finalizers_and_open_files.py)."""
    code = (
        "import pickle, typing, sys, __main__\n"
        "from dataclasses import dataclass\n"
        "@dataclass\n"
        "class Point:\n"
        "    x: 'int'\n"
        "    tag: str = NAME\n"
        "copy = pickle.loads(pickle.dumps(Point(3)))\n"
        "print(copy, typing.get_type_hints(Point)['x'], __main__.NAME, sys.modules['__main__'].__dict__ is globals())\n"
    )
    first, second = kernel.create_context(), kernel.create_context()
    for context, name in ((first, "first"), (second, "second"), (first, "first")):
        kernel.run_code(f"NAME = {name!r}", context=context)
        result = kernel.run_code(code, context=context)
        assert result.error is None, result.error
        assert result.stdout == f"Point(x=3, tag='{name}') <class 'int'> {name} True\n"


def test_os_write_and_print_keep_their_order(pykernel_bin):
    code = "import os\nfor i in range(200):\n    os.write(1, b'a%d\\n' % i)\n    print('b%d' % i)\n"
    expected = "".join(f"a{i}\nb{i}\n" for i in range(200))
    for _ in range(3):
        assert run(pykernel_bin, "run", "-c", code, env=_environment(PYTHONUNBUFFERED="1")).stdout == expected
    buffered = _environment(PYTHONUNBUFFERED=None)
    assert run(pykernel_bin, "run", "-c", code, env=buffered).stdout == run(PYTHON311, "-c", code, env=buffered).stdout


OUTPUT_PROGRAMS = os.path.join(os.path.dirname(__file__), "output_programs")


def test_output_programs_print_exactly_what_python3_prints(pykernel_bin, kernel, tmp_path):
    """Programs about output itself (print's every form, reentrant and raising str(), large
    writes): `pykernel run` gives python3.11's stdout, stderr and status, and a context's run
    gives its stdout."""
    names = sorted(name for name in os.listdir(OUTPUT_PROGRAMS) if name.endswith(".py"))
    assert names
    for name in names:
        program = tmp_path / name
        shutil.copy(os.path.join(OUTPUT_PROGRAMS, name), program)
        theirs = subprocess.run([PYTHON311, name], capture_output=True, text=True, cwd=tmp_path)
        ours = run(pykernel_bin, "run", name, cwd=tmp_path)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), name
        in_context = kernel.run_code(program.read_text(), context=kernel.create_context(cwd=str(tmp_path)))
        assert in_context.error is None, name
        assert in_context.stdout == theirs.stdout, name


PROGRAM_END = os.path.join(os.path.dirname(__file__), "program_end")


def test_run_ends_a_program_as_python3_does(pykernel_bin, tmp_path):
    """After the last line (or sys.exit, or an uncaught exception) `pykernel run` waits for the
    threads that are not daemons, runs atexit handlers, frees the program's objects (their
    __del__) and flushes files left open: the same stdout, stderr, status and files as python3.11."""
    names = sorted(name for name in os.listdir(PROGRAM_END) if name.endswith(".py"))
    assert names
    for name in names:
        shutil.copy(os.path.join(PROGRAM_END, name), tmp_path / name)
        outcomes = []
        for command in ([PYTHON311, name], [pykernel_bin, "run", name]):
            done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
            files = {path.name: path.read_text() for path in tmp_path.iterdir() if path.name != name}
            for path in tmp_path.iterdir():
                if path.name != name:
                    path.unlink()
            outcomes.append((done.returncode, done.stdout, done.stderr, files))
        assert outcomes[1] == outcomes[0], name
        (tmp_path / name).unlink()


RUN_PROGRAMS = os.path.join(os.path.dirname(__file__), "run_programs")


def test_run_gives_a_script_what_python3_gives_it(pykernel_bin, tmp_path):
    """Programs about being a script (`__file__` as given, `__loader__`, `__cached__`,
    `sys.orig_argv`), run as `./NAME x`: `pykernel run` gives python3.11's stdout, stderr and status."""
    names = sorted(name for name in os.listdir(RUN_PROGRAMS) if name.endswith(".py"))
    assert names
    for name in names:
        shutil.copy(os.path.join(RUN_PROGRAMS, name), tmp_path / name)
        theirs = subprocess.run([PYTHON311, f"./{name}", "x"], capture_output=True, text=True, cwd=tmp_path)
        ours = run(pykernel_bin, "run", f"./{name}", "x", cwd=tmp_path)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), name
    code = "import sys\nprint(__loader__, sys.orig_argv[1:], sorted(globals()))"
    theirs = subprocess.run([PYTHON311, "-c", code, "a"], capture_output=True, text=True)
    ours = run(pykernel_bin, "run", "-c", code, "a")
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


STDIN_PROGRAMS = [
    ("name = input('Name? ')\nprint('hi', name)\nprint(repr(input()))\n", "Ada\nsecond line\n"),
    ("import sys\nprint(repr(sys.stdin.readline()))\nfor line in sys.stdin:\n    print(repr(line))\n", "a\nb\nc\n"),
    ("import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))\n", "".join(f"{i} {i}\n" for i in range(3000))),
    ("import sys\nprint(sys.stdin.buffer.readline())\nprint(len(sys.stdin.buffer.read()))\n", "\u00e9t\u00e9\n" + "x\n" * 500),
    ("try:\n    input('prompt> ')\nexcept EOFError as e:\n    print('EOF:', e)\nimport sys\nprint(repr(sys.stdin.read()))\n", ""),
    ("import sys\nprint([repr(line) for line in sys.stdin])\n", "no newline at the end"),
    ("import sys\nprint(len(sys.stdin.read().splitlines()))\n", "".join(f"line {i}\n" for i in range(200_000))),
    ("import sys\ns = sys.stdin\nprint(s.name, s.mode, s.encoding, s.errors, s.isatty(), s.fileno(), s.buffer.raw.name)\n", "x\n"),
    ("import getpass\nprint(repr(getpass.getpass('PIN: ')))\n", "1234\n"),
]


def test_run_reads_its_standard_input_like_python3(pykernel_bin, tmp_path):
    """`pykernel run` reads its own stdin as python3 reading a pipe does: input() with its prompt
    on stdout and EOFError at the end, sys.stdin and sys.stdin.buffer, getpass's fallback."""
    for code, stdin in STDIN_PROGRAMS:
        program = tmp_path / "reads.py"
        program.write_text(code)
        outcomes = [
            subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=tmp_path, timeout=60)
            for command in ([PYTHON311, "reads.py"], [pykernel_bin, "run", "reads.py"])
        ]
        assert [(done.returncode, done.stdout, done.stderr) for done in outcomes][1] == \
            [(done.returncode, done.stdout, done.stderr) for done in outcomes][0], code


def test_run_puts_the_scripts_directory_first_on_sys_path(pykernel_bin, tmp_path):
    """Like python3, a script run from another directory imports the modules beside it."""
    package = tmp_path / "project"
    package.mkdir()
    (package / "helper.py").write_text("GREETING = 'hi from the helper'\n")
    (package / "main.py").write_text("import sys, helper\nprint(helper.GREETING)\nprint(sys.path[0])\n")
    link = tmp_path / "linked_main.py"
    link.symlink_to(package / "main.py")
    for script in (package / "main.py", link):
        ours = run(pykernel_bin, "run", str(script), cwd="/")
        theirs = subprocess.run([PYTHON311, str(script)], capture_output=True, text=True, cwd="/")
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
        assert ours.stdout == f"hi from the helper\n{package}\n"


def test_run_with_pythonsafepath_puts_nothing_first_on_sys_path(pykernel_bin, tmp_path):
    """PYTHONSAFEPATH=1 (`sys.flags.safe_path`, python3 -P): neither the script's directory nor
    the working directory ('' for -c and -) comes first on sys.path, so a module beside the script
    does not shadow the standard library's; a directory run still has its path first."""
    (tmp_path / "json.py").write_text("print('SHADOWED')\n")
    program = "import sys, json\nprint(sys.flags.safe_path, sys.path[:2])\n"
    (tmp_path / "prog.py").write_text(program)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text(program)
    env = _environment(PYTHONSAFEPATH="1")
    for args, stdin in ((["prog.py"], None), (["-c", program], None), (["-"], program), (["app"], None)):
        theirs = subprocess.run([PYTHON311, *args], input=stdin, capture_output=True, text=True, cwd=tmp_path, env=env,
                                timeout=60)
        ours = subprocess.run([pykernel_bin, "run", *args], input=stdin, capture_output=True, text=True, cwd=tmp_path,
                              env=env, timeout=60)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args
        assert "SHADOWED" not in theirs.stdout and theirs.stdout.startswith("True ["), theirs


def test_run_exits_with_the_status_given_to_os_exit_like_python3(pykernel_bin):
    """`pykernel run` is python3: os._exit ends it with that status (only `serve` guards it)."""
    done = run(pykernel_bin, "run", "-c", "import os\nos._exit(4)\nprint('never')")
    assert (done.returncode, done.stdout) == (4, "")


def test_run_calls_the_codes_handler_of_the_engines_stop_signal_as_python3(pykernel_bin):
    """`pykernel run`: the code's handler of SIGRTMIN+3 (the engine's stop signal), sent to its
    own process, was never called (the engine took it for a stale stop); ignored, it does nothing."""
    code = ("import os, signal\ngot = []\nsignal.signal(signal.SIGRTMIN + 3, lambda s, f: got.append(f.f_lineno))\n"
            "os.kill(os.getpid(), signal.SIGRTMIN + 3)\nsignal.raise_signal(signal.SIGRTMIN + 3)\n"
            "print(got)\nsignal.signal(signal.SIGRTMIN + 3, signal.SIG_IGN)\n"
            "os.kill(os.getpid(), signal.SIGRTMIN + 3)\nprint('ignored')")
    expected = subprocess.run([PYTHON311, "-c", code], capture_output=True, text=True, timeout=60)
    assert (expected.returncode, expected.stdout) == (0, "[4, 5]\nignored\n")
    done = run(pykernel_bin, "run", "-c", code)
    assert (done.returncode, done.stdout, done.stderr) == (0, expected.stdout, "")


def test_os_exit_in_a_served_context_ends_the_run_not_the_server(kernel):
    ctx = kernel.create_context()
    kernel.run_code("kept = 41", context=ctx)
    result = kernel.run_code("import os\nos._exit(1)", context=ctx)
    assert result.error.name == "SystemExit" and result.error.value == "1"
    assert kernel.run_code("print(kept + 1)", context=ctx).stdout == "42\n"


RUNTIME_TRACEBACK = os.path.join(os.path.dirname(__file__), os.pardir, "runtime", "pykernel_traceback.py")


def test_native_suggestion_distance_matches_the_python_port(pykernel_bin, tmp_path):
    """The engine computes "Did you mean" distances natively; on random and tricky names it
    gives what the Python port of CPython's suggestions.c gives (and the suggestions match)."""
    program = tmp_path / "compare.py"
    program.write_text(
        "import importlib.util, random, sys\n"
        "import pykernel_traceback as engine\n"
        f"spec = importlib.util.spec_from_file_location('port', {os.path.abspath(RUNTIME_TRACEBACK)!r})\n"
        "port = importlib.util.module_from_spec(spec); spec.loader.exec_module(port)\n"
        "assert engine._levenshtein_distance is not port._levenshtein_distance\n"
        "assert type(engine._levenshtein_distance).__name__ == 'builtin_function_or_method'\n"
        "rng = random.Random(5)\n"
        "alphabet = b'abcABC_xyzXYZ019\\xc3\\xa9'\n"
        "def word():\n"
        "    return bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 45)))\n"
        "mismatches = 0\n"
        "for _ in range(20000):\n"
        "    a, b = word(), word()\n"
        "    if rng.random() < 0.5:\n"
        "        b = a[:rng.randint(0, len(a))] + word()[:3] + a[rng.randint(0, len(a)):]\n"
        "    cost = rng.randint(0, 40)\n"
        "    if engine._levenshtein_distance(a, b, cost) != port._levenshtein_distance(a, b, cost):\n"
        "        mismatches += 1\n"
        "names = dir(__builtins__) + ['prnt', 'lenn', 'Print', 'rnage', 'x' * 50, 'Tru', 'a\\0b', 'é']\n"
        "def both(candidates, name):\n"
        "    results = []\n"
        "    for module in (engine, port):\n"
        "        try:\n"
        "            results.append(module._calculate_suggestions(candidates, name))\n"
        "        except Exception:\n"
        "            results.append('<raised>')\n"
        "    return results\n"
        "for name in names + ['a', 'a\\0c', 'zzz', '\\udcff']:\n"
        "    ours, theirs = both(names, name)\n"
        "    assert ours == theirs, (name, ours, theirs)\n"
        "    ours, theirs = both(rng.sample(names, 20) + [name + 'x'], name)\n"
        "    assert ours == theirs, (name, ours, theirs)\n"
        "assert both(['abc', 1], 'abd') == ['<raised>', '<raised>']\n"
        "assert both(['x'] * 750, 'y') == [None, None]\n"
        "print(mismatches)\n")
    done = run(pykernel_bin, "run", str(program), timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0\n", "")


def test_serve_log_level_chooses_what_stderr_gets(pykernel_bin):
    requests = ('{"jsonrpc":"2.0","id":1,"method":"kernel.info"}\n'
                '{"jsonrpc":"2.0","id":2,"method":"code.run","params":{"code":"import sys; print(\'user-output-marker\', file=sys.stderr)"}}\n')
    debug = subprocess.run([pykernel_bin, "serve", "--log-level", "debug"], input=requests,
                           capture_output=True, text=True, timeout=60)
    assert debug.returncode == 0
    assert "pykernel[debug]: request kernel.info\n" in debug.stderr
    assert "pykernel[info]: end of input" in debug.stderr
    # Output of user code is captured for the protocol, never mixed into the log.
    assert "user-output-marker" not in debug.stderr and '"text":"user-output-marker\\n"' in debug.stdout
    quiet = subprocess.run([pykernel_bin, "serve"], input=requests, capture_output=True, text=True, timeout=60)
    assert quiet.returncode == 0 and quiet.stderr == ""
    refused = subprocess.run([pykernel_bin, "serve", "--log-level", "verbose"], input="", capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode != 0 and "--log-level must be one of error, warning, info, debug" in refused.stderr


PROCESS_PROGRAMS = os.path.join(os.path.dirname(__file__), "process_programs")


def _environment(**changes):
    """The test's environment without what changes how python3 buffers and encodes, plus `changes`
    (a value of None removes the variable)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "LC_")) and key != "LANG"}
    env["LC_ALL"] = "C.UTF-8"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _close_stdin():
    os.close(0)


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _ignore_crash_signals():
    for number in (signal.SIGQUIT, signal.SIGILL, signal.SIGTRAP, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE,
                   signal.SIGSEGV):
        signal.signal(number, signal.SIG_IGN)


# How a program is started: (name, environment, stderr into stdout's pipe, what the child does
# before it starts: close descriptor 0, or ignore SIGINT as a shell's background job does, or
# SIGQUIT (as that job has it too) and the signals of a crash).
PROCESS_SETUPS = [
    ("pipes", _environment(), False, None),
    ("2>&1", _environment(), True, None),
    ("PYTHONUNBUFFERED=1", _environment(PYTHONUNBUFFERED="1"), False, None),
    ("PYTHONIOENCODING=utf-8", _environment(PYTHONIOENCODING="utf-8"), True, None),
    ("no locale", _environment(LC_ALL=None), False, None),
    ("<&-", _environment(), False, _close_stdin),
    ("SIGINT ignored", _environment(), False, _ignore_sigint),
    ("SIGQUIT and crash signals ignored", _environment(), False, _ignore_crash_signals),
]


def _started(command, cwd, env, merged, before_start):
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        preexec_fn=before_start)


def _outcome(process):
    """(status, stdout, stderr) of a process _started, read to its end (killed after 60 s)."""
    with process:
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return process.returncode, stdout, stderr


def test_run_owns_the_process_as_python3_does(pykernel_bin, tmp_path):
    """Programs about the process itself (descriptors, buffering, os._exit, fatal signals, SIGINT,
    closed and unencodable streams), each started several ways (pipes, 2>&1, PYTHONUNBUFFERED,
    PYTHONIOENCODING, C locale, descriptor 0 closed, SIGINT ignored, SIGQUIT and the signals of a
    crash ignored): `pykernel run` gives python3.11's stdout and stderr bytes and status."""
    names = sorted(name for name in os.listdir(PROCESS_PROGRAMS) if name.endswith(".py"))
    assert names
    for name in names:
        shutil.copy(os.path.join(PROCESS_PROGRAMS, name), tmp_path / name)
    # Two ways at a time, python3's run and pykernel's of each started together (four processes,
    # one after the other they took most of the time); each program reads and signals only
    # itself. Started from this thread: a setup's preexec_fn is not for a process with others.
    ways = [(name, setup) for name in names for setup in PROCESS_SETUPS]
    differences = []
    for first in range(0, len(ways), 2):
        started = [(name, setup[0], _started([PYTHON311, name], tmp_path, *setup[1:]),
                    _started([pykernel_bin, "run", name], tmp_path, *setup[1:]))
                   for name, setup in ways[first:first + 2]]
        try:
            for name, setup, python3, pykernel in started:
                theirs, ours = _outcome(python3), _outcome(pykernel)
                if ours != theirs:
                    differences.append((name, setup, theirs, ours))
        finally:
            for _, _, *processes in started:
                for process in processes:
                    if process.poll() is None:
                        process.kill()
                        process.communicate()
    assert differences == []


def test_run_into_a_pipe_closed_early_ends_as_python3_does(pykernel_bin, tmp_path):
    """`pykernel run many_lines.py | head -1`: the write to the closed pipe raises BrokenPipeError
    (SIGPIPE is ignored), reported as python3 reports it, with python3's status."""
    shutil.copy(os.path.join(PROCESS_PROGRAMS, "many_lines.py"), tmp_path / "many_lines.py")
    outcomes = []
    for command in ([PYTHON311, "many_lines.py"], [pykernel_bin, "run", "many_lines.py"]):
        with subprocess.Popen(command, cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as process:
            first = process.stdout.readline()
            process.stdout.close()
            stderr = process.stderr.read()
            outcomes.append((process.wait(timeout=60), first, stderr))
    assert outcomes[1] == outcomes[0]
    assert b"BrokenPipeError" in outcomes[0][2]


def test_run_dash_reads_the_program_from_stdin_like_python3(pykernel_bin, tmp_path):
    """`pykernel run -` is `python3 -`: the program is standard input (it failed with "can't open
    file '.../-'"): sys.argv[0] is '-', __file__ '<stdin>', sys.path[0] the working directory,
    tracebacks and warnings name `<stdin>` without source lines, and the program's own reads of
    stdin find its end."""
    programs = {
        "names": "import sys\nprint(sys.argv, repr(__file__), __cached__, __loader__, __spec__, repr(sys.path[0]), sys.orig_argv[1:])\n",
        "traceback": "def f():\n    1/0\nprint('before', flush=True)\nf()\n",
        "syntax error": "print('never')\nx = (\n",
        "warning and exit": "import warnings\nwarnings.warn('careful')\nraise SystemExit(3)\n",
        "stdin is at its end": "import sys\nprint(repr(sys.stdin.read()))\ninput('? ')\n",
        "empty": "",
    }
    for name, program in programs.items():
        ours = subprocess.run([pykernel_bin, "run", "-", "a", "-b"], input=program, capture_output=True, text=True, cwd=tmp_path,
                              timeout=60)
        theirs = subprocess.run([PYTHON311, "-", "a", "-b"], input=program, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), name
        if name == "traceback":
            assert 'File "<stdin>", line 4, in <module>' in ours.stderr, ours.stderr


def test_run_without_a_file_reads_the_program_from_stdin_like_python3(pykernel_bin, tmp_path):
    """`pykernel run` alone, its standard input not a terminal, is `python3` so: the program is
    standard input, `sys.argv` `['']` (it exited 64 with a usage message). On a terminal, where
    python3 starts its interactive prompt, it still refuses, saying why."""
    program = ("import sys\nprint(sys.argv, repr(__file__), repr(sys.path[0]), sys.orig_argv[1:])\n"
               "print(repr(sys.stdin.read()))\nraise SystemExit(3)\n")
    ours = subprocess.run([pykernel_bin, "run"], input=program, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    theirs = subprocess.run([PYTHON311], input=program, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert ours.stdout.startswith("[''] '<stdin>'")
    controller, terminal = os.openpty()
    try:
        done = subprocess.run([pykernel_bin, "run"], stdin=terminal, capture_output=True, text=True, timeout=60)
    finally:
        os.close(terminal)
        os.close(controller)
    assert done.returncode == 64 and "standard input is a terminal" in done.stderr, done.stderr


# Programs that leave a partial line in stdout's buffer, then end with a message on stderr: their
# own, or in a child they fork (which python3 ends as it ends a program).
REPORTS_AFTER_A_PARTIAL_LINE = {
    "sys.exit's message": "import sys\nprint('pre', end='')\nsys.exit('msg')\n",
    "uncaught exception": "print('pre', end='')\nraise ValueError('v')\n",
    "forked child's sys.exit message": "import os, sys\nprint('pre', end='')\nif os.fork() == 0:\n    sys.exit('msg')\nos.wait()\n",
    "forked child's uncaught exception": "import os\nprint('pre', end='')\nif os.fork() == 0:\n    raise ValueError('v')\nos.wait()\n",
    "forked child's KeyboardInterrupt": "import os\nprint('pre', end='')\nif os.fork() == 0:\n    raise KeyboardInterrupt\nos.wait()\n",
}


@pytest.mark.parametrize("form", ["FILE", "-", "stdin alone", "-c", "directory"])
def test_run_flushes_stdout_before_the_final_message_where_python3_does(pykernel_bin, tmp_path, form):
    """python3 flushes the standard streams after the code of a file or of standard input (`-`, or
    no program given), before it prints an uncaught exception or `sys.exit`'s message (`flush_io`),
    and so does a child the program forked; not after `-c`'s code nor a directory's `__main__`.
    With stderr into stdout's pipe, a partial line comes before or after the message as python3's:
    `pykernel run -` and a forked child printed the message first (`msg\npre` for `premsg\n`)."""
    directory = tmp_path / "program"
    directory.mkdir()
    differences = []
    for name, source in REPORTS_AFTER_A_PARTIAL_LINE.items():
        (directory / "__main__.py").write_text(source)
        arguments = {"FILE": [os.path.join("program", "__main__.py")], "-": ["-"], "stdin alone": [],
                     "-c": ["-c", source], "directory": ["program"]}[form]
        program_input = source.encode() if form in ("-", "stdin alone") else b""
        outcomes = []
        for command in ([PYTHON311], [pykernel_bin, "run"]):
            done = subprocess.run(command + arguments, input=program_input, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, cwd=tmp_path, env=_environment(), timeout=60)
            outcomes.append((done.returncode, done.stdout))
        if outcomes[1] != outcomes[0]:
            differences.append((name, outcomes[0], outcomes[1]))
    assert differences == []


def test_run_dash_decodes_the_program_as_python3_decodes_its_stdin(pykernel_bin, tmp_path):
    """`pykernel run -` parses its standard input as python3 does, with CPython's file tokenizer
    (it compiled the bytes as a string): bytes that are not UTF-8, a null byte, an unknown coding,
    and a coding cookie of another encoding than UTF-8, which python3 honours on a file but cannot
    on a pipe (`SyntaxError: encoding problem: ...`), nor from a process substitution's path."""
    names = sorted(name for name in os.listdir(RUN_PROGRAMS) if name.startswith("source_"))
    assert "source_latin1_cookie.py" in names and "source_null_byte.py" in names
    differences = []
    for name in names:
        shutil.copy(os.path.join(RUN_PROGRAMS, name), tmp_path / name)
        source = (tmp_path / name).read_bytes()
        outcomes = {}
        for how in ("pipe", "file", "<(...)"):
            for command in ([PYTHON311], [pykernel_bin, "run"]):
                if how == "<(...)":
                    script = f"{shlex.join(command)} <(cat {shlex.quote(name)})"
                    done = subprocess.run(["bash", "-c", script], capture_output=True, cwd=tmp_path, timeout=60)
                    done.stderr = re.sub(rb"/dev/fd/\d+", b"/dev/fd/N", done.stderr)
                elif how == "pipe":
                    done = subprocess.run(command + ["-"], input=source, capture_output=True, cwd=tmp_path, timeout=60)
                else:
                    with open(tmp_path / name, "rb") as stdin:
                        done = subprocess.run(command + ["-"], stdin=stdin, capture_output=True, cwd=tmp_path, timeout=60)
                outcomes.setdefault(how, []).append((done.returncode, done.stdout, done.stderr))
            if outcomes[how][1] != outcomes[how][0]:
                differences.append((name, how, *outcomes[how]))
    assert differences == []
    # The corpus has a cookie python3 honours on a file and not on a pipe.
    latin1 = (tmp_path / "source_latin1_cookie.py").read_bytes()
    piped = subprocess.run([PYTHON311, "-"], input=latin1, capture_output=True, timeout=60)
    assert b"SyntaxError: encoding problem: iso-8859-1" in piped.stderr, piped
    with open(tmp_path / "source_latin1_cookie.py", "rb") as stdin:
        assert subprocess.run([PYTHON311, "-"], stdin=stdin, capture_output=True, timeout=60).stdout.startswith(
            "café 4".encode())


def test_run_keeps_bytes_that_are_not_utf8_in_its_command_line_and_directory_as_python3(pykernel_bin, tmp_path):
    """Bytes that are not UTF-8 in the arguments, the program's path, `-c` code and the working
    directory are python3's (`os.fsdecode`: `'\\udce9'`), not U+FFFD: sys.argv, sys.orig_argv,
    `__file__`, sys.path[0] and tracebacks of a script and of a directory in `dir\\xff`, run
    from there too (it refused to start: invalid_cwd), and of a file missing there; `-c` code
    python3 cannot decode is refused with its message and status 1."""
    directory = os.fsencode(tmp_path) + b"/dir\xff"
    os.makedirs(directory + b"/app")
    program = b"import os, sys\nprint(sys.argv, sys.orig_argv[1:], repr(os.getcwd()))\nprint(__file__, sys.path[0])\n1/0\n"
    for name in (b"/prog.py", b"/app/__main__.py"):
        with open(directory + name, "wb") as file:
            file.write(program)
    shows = "import os, sys; print(sys.argv, sys.orig_argv[1:], repr(os.getcwd()))"
    runs = [
        (os.fsencode(tmp_path), [b"dir\xff/prog.py", b"\xe9t\xe9", b"caf\xc3\xa9"], None),
        (directory, [b"prog.py", b"\xff"], None),
        (directory, [b"app", b"\xff"], None),
        (directory, [b"missing\xfe.py"], None),
        (directory, [b"-c", shows.encode(), b"\xe9"], None),
        (directory, [b"-c", b"print('\xe9t\xe9')"], None),
        (directory, [b"-", b"\xe9"], shows.encode()),
    ]
    outcomes = []
    for cwd, args, stdin in runs:
        theirs = subprocess.run([PYTHON311.encode(), *args], input=stdin, capture_output=True, cwd=cwd, timeout=60)
        ours = subprocess.run([pykernel_bin.encode(), b"run", *args], input=stdin, capture_output=True, cwd=cwd, timeout=60)
        our_stderr = ours.stderr.replace(pykernel_bin.encode(), PYTHON311.encode())
        assert (ours.returncode, ours.stdout, our_stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args
        outcomes.append(theirs)
    # What python3 gives them: surrogate escapes, in the working directory and tracebacks too.
    assert b"'\\udce9t\\udce9', 'caf\xc3\xa9']" in outcomes[0].stdout
    assert b'File "' + os.fsencode(tmp_path) + b'/dir\\udcff/prog.py", line 4' in outcomes[1].stderr
    assert outcomes[1].stdout.endswith(b"dir\\udcff'\n" + directory + b"/prog.py " + directory + b"\n")
    assert (outcomes[5].returncode, outcomes[5].stderr.splitlines()[0]) == (1, b"Unable to decode the command from the command line:")


def test_run_of_a_missing_file_says_what_python3_says(pykernel_bin, tmp_path):
    """Status 2 and python3's message after the program's own name."""
    theirs = subprocess.run([PYTHON311, "missing.py"], capture_output=True, text=True, cwd=tmp_path)
    ours = run(pykernel_bin, "run", "missing.py", cwd=tmp_path)
    assert ours.returncode == theirs.returncode == 2
    assert ours.stdout == theirs.stdout == ""
    assert ours.stderr.removeprefix(pykernel_bin) == theirs.stderr.removeprefix(PYTHON311)


def test_run_reads_a_named_pipe_and_a_process_substitution_as_python3(pykernel_bin, tmp_path):
    """A program given as a named pipe (or bash's `<(...)`, a /dev/fd path) is read to its end, as
    python3 reads it (it said "[Errno 21] Is a directory")."""
    program = "import sys\nprint(sys.argv, __file__, sys.path[0])\n"
    fifo = tmp_path / "program.fifo"
    os.mkfifo(fifo)
    outcomes = []
    for command in ([PYTHON311, str(fifo), "x"], [pykernel_bin, "run", str(fifo), "x"]):
        with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as process:
            with open(fifo, "w") as writer:
                writer.write(program)
            stdout, stderr = process.communicate(timeout=60)
            outcomes.append((process.returncode, stdout, stderr))
    assert outcomes[1] == outcomes[0] == (0, f"{[str(fifo), 'x']} {fifo} {tmp_path}\n", "")
    script = f"printf '%s' {shlex.quote(program)} > /dev/null; {{}} <(printf '%s' {shlex.quote(program)})"
    theirs = subprocess.run(["bash", "-c", script.format(PYTHON311)], capture_output=True, text=True, timeout=60)
    ours = subprocess.run(["bash", "-c", script.format(shlex.quote(pykernel_bin) + " run")], capture_output=True, text=True,
                          timeout=60)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert theirs.returncode == 0 and theirs.stdout.startswith("['/dev/fd/"), theirs


def test_sigint_from_outside_interrupts_as_in_python3(pykernel_bin, tmp_path):
    """Ctrl-C (SIGINT to the process) during a sleep, then during a busy loop: KeyboardInterrupt
    where the code is, caught then uncaught (traceback, death by SIGINT), as with python3.11."""
    program = tmp_path / "interrupted.py"
    program.write_text(
        "import time\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    announced = False\n"
        "# wherever the second interrupt lands, it is on this line:\n"
        "while True: announced = announced or print('looping', flush=True) or True\n"
    )
    outcomes = []
    for command in ([PYTHON311, program.name], [pykernel_bin, "run", program.name]):
        with subprocess.Popen(command, cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as process:
            lines = [process.stdout.readline()]
            process.send_signal(signal.SIGINT)
            lines.append(process.stdout.readline())
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=60)
            # Carets under the call only when the interrupt landed inside print: either may happen.
            stderr = b"".join(line for line in stderr.splitlines(True) if line.strip(b" ^\n"))
            outcomes.append((process.returncode, lines, stdout, stderr))
    assert outcomes[1] == outcomes[0]
    assert outcomes[0][0] == -signal.SIGINT


def test_ctrl_c_of_the_whole_group_interrupts_a_wait_for_a_child_as_in_python3(pykernel_bin, tmp_path):
    """A terminal's Ctrl-C reaches the whole foreground group: the child the program waits for dies
    of it, and python3 raises KeyboardInterrupt in the wait (os.waitpid fails with EINTR), every
    time. The signal went to the process's main thread, which only forwarded it to the program's
    thread, whose wait the child's death often ended first: the KeyboardInterrupt came 1-12 ms
    after the wait had returned (`pykernel run prog.py && deploy` went on to deploy)."""
    program = tmp_path / "waits.py"
    program.write_text(
        "import subprocess, time\n"
        "for _ in range(20):\n"
        "    child = subprocess.Popen(['sleep', '10'])\n"
        "    where = 'before the wait'\n"
        "    try:\n"
        "        print('waiting', flush=True)\n"
        "        where = 'in the wait'\n"
        "        child.wait()\n"
        "        where = 'after the wait'\n"
        "        time.sleep(5)\n"
        "        where = 'nowhere'\n"
        "    except KeyboardInterrupt:\n"
        "        pass\n"
        "    child.wait()\n"
        "    print(where, flush=True)\n"
    )
    outcomes = []
    for command in ([PYTHON311, program.name], [pykernel_bin, "run", program.name]):
        with subprocess.Popen(command, cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, start_new_session=True) as process:
            lines = []
            for _ in range(20):
                assert process.stdout.readline() == b"waiting\n"
                time.sleep(0.1)  # in the wait
                os.killpg(process.pid, signal.SIGINT)
                lines.append(process.stdout.readline().decode())
            stdout, stderr = process.communicate(timeout=60)
            outcomes.append((process.returncode, lines, stdout, stderr))
    assert outcomes[0] == (0, ["in the wait\n"] * 20, b"", b"")
    assert outcomes[1] == outcomes[0]


def test_sigwait_takes_a_signal_sent_to_the_process_as_in_python3(pykernel_bin, tmp_path):
    """A signal the program's thread blocks and waits for with `signal.sigwait`, sent to the process
    from outside: python3 returns it from the wait. The process's main thread, which blocked
    nothing, took it at its default action instead, and SIGUSR1 ended the program."""
    program = tmp_path / "sigwait.py"
    program.write_text(
        "import signal\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
        "print('waiting', flush=True)\n"
        "print(signal.sigwait({signal.SIGUSR1}))\n"
    )
    outcomes = []
    for command in ([PYTHON311, program.name], [pykernel_bin, "run", program.name]):
        with subprocess.Popen(command, cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) as process:
            assert process.stdout.readline() == b"waiting\n"
            process.send_signal(signal.SIGUSR1)
            stdout, stderr = process.communicate(timeout=60)
            outcomes.append((process.returncode, stdout, stderr))
    assert outcomes[1] == outcomes[0] == (0, f"{signal.SIGUSR1}\n".encode(), b"")


def test_an_uncaught_keyboard_interrupt_with_sigint_blocked_exits_130_as_python3(pykernel_bin):
    """python3 ends an uncaught KeyboardInterrupt by SIGINT; when its thread blocks SIGINT the
    signal stays pending and it exits with status 130. The process's main thread, which blocked
    nothing, took it: the program died of SIGINT."""
    code = "import signal\nsignal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\nraise KeyboardInterrupt"
    theirs = subprocess.run([PYTHON311, "-c", code], capture_output=True, text=True)
    ours = run(pykernel_bin, "run", "-c", code)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    assert theirs.returncode == 128 + signal.SIGINT


def test_run_has_no_notebook_builtins_as_python3(pykernel_bin):
    """A program that tells a notebook from python3 by `display` finds python3."""
    code = "try:\n    display\nexcept NameError:\n    print('python3')\nelse:\n    print('notebook')\n"
    theirs = subprocess.run([PYTHON311, "-c", code], capture_output=True, text=True)
    ours = run(pykernel_bin, "run", "-c", code)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr) == (0, "python3\n", "")


@pytest.mark.parametrize("hook, status, stderr", [
    ("lambda *a: sys.exit(6)", 6, ""),
    ("lambda *a: sys.exit('hook msg')", 1, "hook msg\n"),
])
def test_a_system_exit_from_sys_excepthook_ends_the_program_by_it(pykernel_bin, tmp_path, hook, status, stderr):
    """python3 exits as the hook's SystemExit says; it was reported as the hook's failure (status 1
    and both tracebacks)."""
    program = tmp_path / "hook.py"
    program.write_text(f"import sys\nsys.excepthook = {hook}\nraise ValueError('original')\n")
    done = run(pykernel_bin, "run", str(program))
    expected = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (expected.returncode, expected.stderr) == (status, stderr)



def test_a_warning_of_dash_c_code_shows_no_source_line(pykernel_bin):
    """python3 -c keeps the code's source nowhere linecache looks: a warning shows no line."""
    code = 'import warnings; warnings.warn("w")'
    done = run(pykernel_bin, "run", "-c", code)
    expected = subprocess.run([PYTHON311, "-c", code], capture_output=True, text=True)
    assert done.stderr == expected.stderr == "<string>:1: UserWarning: w\n"


# A program about how it was found and run, whose exception is raised from a function (two frames
# of it under runpy's, with their lines when there is a source to read them from).
MAIN_MODULE = (
    "import sys, warnings, helper\n"
    "spec = __spec__ and (__spec__.name, __spec__.origin, type(__spec__.loader).__name__)\n"
    "print(sys.argv, __file__, __cached__, __package__, repr(sys.path[0]), spec, type(__loader__).__name__)\n"
    "print(sorted(globals()), sys.orig_argv[1:], helper.NAME, __import__('__main__').__file__ == __file__)\n"
    "warnings.warn('careful')\n"
    "def fail():\n"
    "    raise ValueError('from inside')\n"
    "fail()\n"
)


def _zip_file(path, files, prefix=b""):
    """A zip file at `path` holding `files` (name: text), after `prefix` (a zipapp's `#!` line)."""
    import io
    import zipfile
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, text in files.items():
            zipped.writestr(name, text)
    path.write_bytes(prefix + archive.getvalue())


def test_run_runs_a_directory_a_zip_file_and_a_pyc_as_python3(pykernel_bin, tmp_path):
    """What python3 runs besides a source file: a directory or zip file with a `__main__.py`
    (runpy's `__main__`, the path first on sys.path; any zip file, whatever its name, a zipapp's
    `#!` line before it included) and a compiled file (by its `.pyc` name or its magic number).
    `pykernel run` gave "Is a directory" or a SyntaxError of the bytes; now python3.11's stdout,
    stderr (tracebacks under runpy's frames, warnings, python3's errors for a bad `.pyc`) and status,
    and when there is no `__main__`, python3's message after the program's own name."""
    files = {"__main__.py": MAIN_MODULE, "helper.py": "NAME = 'helper'\n"}
    (tmp_path / "app").mkdir()
    for name, text in files.items():
        (tmp_path / "app" / name).write_text(text)
    _zip_file(tmp_path / "app.pyz", files)
    _zip_file(tmp_path / "app.zip", files)
    _zip_file(tmp_path / "shebang", files, prefix=b"#!/usr/bin/env python3\n")
    (tmp_path / "no_main").mkdir()
    _zip_file(tmp_path / "no_main.pyz", {"helper.py": "NAME = 'helper'\n"})
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "__main__.py").write_text("print('never')\nx = (\n")
    (tmp_path / "exits").mkdir()
    (tmp_path / "exits" / "__main__.py").write_text("raise SystemExit('bye')\n")
    (tmp_path / "not_zip.pyz").write_text("print('a source file, whatever its name')\n")
    (tmp_path / "compiled.py").write_text("import sys\nprint(sys.argv, __file__, __cached__, type(__loader__).__name__)\n"
                                          "def fail():\n    1/0\nfail()\n")
    subprocess.run([PYTHON311, "-c", "import py_compile; py_compile.compile('compiled.py', cfile='compiled.pyc')"],
                   cwd=tmp_path, check=True)
    compiled = (tmp_path / "compiled.pyc").read_bytes()
    (tmp_path / "compiled_no_suffix").write_bytes(compiled)
    (tmp_path / "text.pyc").write_text("print('not compiled')\n")
    (tmp_path / "header_cut.pyc").write_bytes(compiled[:10])
    (tmp_path / "code_cut.pyc").write_bytes(compiled[:40])
    programs = ["app", "./app/", str(tmp_path / "app"), "app.pyz", "app.zip", "shebang", "no_main", "./no_main/",
                "no_main.pyz", "broken", "exits", "not_zip.pyz", "compiled.pyc", "compiled_no_suffix", "text.pyc",
                "header_cut.pyc", "code_cut.pyc"]
    for program in programs:
        theirs = subprocess.run([PYTHON311, program, "a", "-b"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
        ours = run(pykernel_bin, "run", program, "a", "-b", cwd=tmp_path)
        # "can't find '__main__' module": python3 names itself (sys.executable), pykernel itself.
        if theirs.stderr.startswith(PYTHON311 + ": "):
            assert ours.stderr.startswith(pykernel_bin + ": "), (program, ours.stderr)
            ours.stderr, theirs.stderr = ours.stderr.removeprefix(pykernel_bin), theirs.stderr.removeprefix(PYTHON311)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), program
    # What the comparison covered: runpy ran the directory's and the zip file's `__main__`.
    done = run(pykernel_bin, "run", "app.pyz", cwd=tmp_path)
    assert f"{tmp_path}/app.pyz/__main__.py" in done.stdout and "helper" in done.stdout, done.stdout
    assert done.stderr.endswith(
        'File "<frozen runpy>", line 88, in _run_code\n'
        f'  File "{tmp_path}/app.pyz/__main__.py", line 8, in <module>\n'
        f'  File "{tmp_path}/app.pyz/__main__.py", line 7, in fail\n'
        "ValueError: from inside\n"), done.stderr
    assert "can't find '__main__' module in" in run(pykernel_bin, "run", "no_main", cwd=tmp_path).stderr


def test_run_gives_the_program_the_low_descriptors_as_python3(pykernel_bin, tmp_path):
    """The program's first descriptor is 3, as under python3: the engine's (Dispatch's epoll
    instance, eventfd and timerfd) were 3-5, so its files, sockets and pipes had other numbers
    than python3's (`fileno()`, a socket's repr, a ResourceWarning). `/proc/self/fd` lists the
    program's own and, beyond python3's, the engine's three, above them."""
    program = tmp_path / "descriptors.py"
    program.write_text(
        "import gc, os, re, socket, warnings\n"
        "warnings.simplefilter('always', ResourceWarning)\n"
        "f = open('/dev/null')\n"
        "print(f.fileno(), os.open('/dev/null', os.O_RDONLY), os.pipe())\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "print(s)\n"
        "del s\n"
        "gc.collect()\n"
        "for name in sorted(os.listdir('/proc/self/fd'), key=int):\n"
        "    try:\n"
        "        target = os.readlink(f'/proc/self/fd/{name}')\n"
        "    except FileNotFoundError:\n"
        "        target = 'the listing itself'\n"
        "    print(name, 'standard' if int(name) < 3 else re.sub(r'\\[\\d+\\]', '', target))\n"
    )
    theirs = subprocess.run([PYTHON311, str(program)], capture_output=True, text=True, timeout=60)
    ours = run(pykernel_bin, "run", str(program))
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert theirs.stdout.startswith("3 4 (5, 6)\n<socket.socket fd=7,"), theirs.stdout
    assert ours.stderr == theirs.stderr and "ResourceWarning: unclosed <socket.socket fd=7," in ours.stderr
    lines = ours.stdout.splitlines()
    engines = [line for line in lines if line.split()[1] in ("anon_inode:[eventpoll]", "anon_inode:[eventfd]", "anon_inode:[timerfd]")]
    assert [line for line in lines if line not in engines] == theirs.stdout.splitlines()
    assert len(engines) == 3 and min(int(line.split()[0]) for line in engines) > 8, engines


# ---------------------------------------------------------------- the servers' shutdown signals

# A first request of each server, and one it answers only while it is not shutting down (a run).
SERVER_REQUESTS = {
    "serve": [{"jsonrpc": "2.0", "id": 1, "method": "kernel.info"},
              {"jsonrpc": "2.0", "id": 2, "method": "code.run", "params": {"code": "print('still serving')"}}],
    "mcp": [{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
                "name": "run_python", "arguments": {"code": "print('still serving')"}}}],
}


def _ask(server, request):
    """Writes `request` to a server and reads the answer with its id (skipping notifications)."""
    server.stdin.write(json.dumps(request) + "\n")
    server.stdin.flush()
    while True:
        line = server.stdout.readline()
        assert line, "the server ended its output"
        answer = json.loads(line)
        if answer.get("id") == request["id"]:
            return answer


def _left_in_session(session):
    """The processes of `session` that still run (not zombies)."""
    left = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session and fields[0] != "Z":
                left.append(int(entry))
    return left


@pytest.mark.parametrize("command", ["serve", "mcp"])
@pytest.mark.parametrize("name", ["SIGHUP", "SIGINT", "SIGTERM"])
def test_a_shutdown_signal_the_server_started_with_ignored_stays_ignored(pykernel_bin, command, name):
    """`nohup pykernel serve` (SIGHUP ignored), or a server started with SIGINT ignored (`trap '' INT`,
    a background job): python3 and `pykernel run` keep a signal that came ignored so; serve and mcp
    shut down on it (a server started with nohup to outlive its terminal ended with it)."""
    number = getattr(signal, name)
    server = subprocess.Popen([pykernel_bin, command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(number, signal.SIG_IGN))
    try:
        first, run = SERVER_REQUESTS[command]
        assert "result" in _ask(server, first)
        server.send_signal(number)
        time.sleep(0.5)
        assert server.poll() is None, f"{command} ended on the {name} it came ignoring: {server.stderr.read()}"
        assert "still serving" in json.dumps(_ask(server, run)["result"])
        server.stdin.close()
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
        server.stderr.close()


@pytest.mark.parametrize("command,name,options", [
    ("serve", "SIGTERM", []), ("serve", "SIGINT", []), ("serve", "SIGTERM", ["--isolation", "process"]),
    ("mcp", "SIGTERM", []), ("mcp", "SIGHUP", ["--isolation", "process"]),
])
def test_a_shutdown_signal_during_start_up_shuts_the_server_down(pykernel_bin, tmp_path, command, name, options):
    """docs/protocol.md: SIGTERM, SIGINT and SIGHUP shut the server down, exit status 0. One that came
    while the server still started (a slow `--preload`: MCP clients send SIGTERM 2 s after closing
    stdin) ended it by the signal's default action (status -15), its handlers not set yet. It now
    shuts the server down as soon as it serves (stdin still open), leaving nothing running."""
    importing = tmp_path / "importing"
    (tmp_path / "slow_start.py").write_text(f"import pathlib, time\npathlib.Path({str(importing)!r}).touch()\ntime.sleep(2)\n")
    server = subprocess.Popen([pykernel_bin, command, "--preload", "slow_start", *options], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                              env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    try:
        deadline = time.monotonic() + 30
        while not importing.exists():
            assert time.monotonic() < deadline and server.poll() is None, server.stderr.read()
            time.sleep(0.02)
        server.send_signal(getattr(signal, name))
        assert server.wait(timeout=30) == 0, server.stderr.read()
        assert server.stdout.read() == b""
        deadline = time.monotonic() + 5
        while _left_in_session(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _left_in_session(server.pid) == []
    finally:
        server.kill()
        server.communicate()
        for pid in _left_in_session(server.pid):
            os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------- `pykernel run -c CODE ARGS...`

SHOW_ARGV = "import sys; print(sys.argv, sys.orig_argv[1:])"


@pytest.mark.parametrize("args", [
    ["-c", SHOW_ARGV, "-v"], ["-c", SHOW_ARGV, "--foo=bar"], ["-c", SHOW_ARGV, "-h"], ["-c", SHOW_ARGV, "--help", "x"],
    ["-c", SHOW_ARGV, "--timeout", "0.001"], ["-c", SHOW_ARGV, "--venv", "/nowhere"], ["-c", SHOW_ARGV, "-c", "print(2)"],
    ["-c", SHOW_ARGV, "--", "-x"], ["-c", SHOW_ARGV, "a", "--", "-x"], ["-c", SHOW_ARGV, "-"],
    ["-c", "-1"], ["-c", "--x"], ["-c", "-print(1)"], ["-c", "--"], ["-c=print(1)"], ["-c" + SHOW_ARGV, "a", "-v"],
])
def test_run_c_ends_the_options_as_in_python3(pykernel_bin, args):
    """python3's options end at `-c CODE`: CODE is the next argument whatever it looks like, and every
    argument after it is the code's (`sys.argv[1:]`). `pykernel run` read them as its own options until
    the first plain one: `-v` was an unknown option (64), `-h` printed the help, `--timeout 1` became
    the run's timeout, a second `-c` replaced the code, `-c -1` missed its value, `-c=print(1)` ran."""
    ours = run(pykernel_bin, "run", *args)
    theirs = subprocess.run([PYTHON311, *args], capture_output=True, text=True)
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


def test_run_takes_its_own_options_before_c_and_keeps_the_terminator_before_a_file(pykernel_bin, tmp_path):
    done = run(pykernel_bin, "run", "--timeout", "30", "-c", SHOW_ARGV, "a")
    assert (done.returncode, done.stdout) == (0, f"['-c', 'a'] ['-c', {SHOW_ARGV!r}, 'a']\n"), done.stderr
    # `--timeout` before -c is the run's.
    done = run(pykernel_bin, "run", "--timeout", "0.2", "-c", "import time; time.sleep(30)")
    assert done.returncode == 1 and "TimeoutError" in done.stderr
    # `python3 -- FILE`: sys.orig_argv keeps the `--`.
    program = tmp_path / "show.py"
    program.write_text(SHOW_ARGV + "\n")
    for args in (["--", str(program), "-v"], [str(program), "--", "-v"]):
        ours = run(pykernel_bin, "run", *args)
        theirs = subprocess.run([PYTHON311, *args], capture_output=True, text=True)
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr), args


# ---------------------------------------------------------------- what is a virtual environment

def test_a_path_without_pyvenv_cfg_or_empty_is_no_virtual_environment(pykernel_bin, tmp_path):
    """README: `--venv PATH` must be a virtual environment, another path stops the program with status
    64. The check was an executable `PATH/bin/python3`, so `/usr`, `/` and `''` (the start directory)
    were taken for one (VIRTUAL_ENV=/usr, sys.prefix '/'); python3's `site` needs `pyvenv.cfg`."""
    python_only = tmp_path / "python-only"
    (python_only / "bin").mkdir(parents=True)
    (python_only / "bin" / "python3").symlink_to(PYTHON311)
    for path in ("/usr", "/", str(python_only)):
        for command in (["run", "--venv", path, "-c", "pass"], ["serve", "--venv", path], ["mcp", "--venv", path]):
            done = subprocess.run([pykernel_bin, *command], input="", capture_output=True, text=True, timeout=60)
            assert (done.returncode, done.stdout) == (64, ""), (command, done.stderr)
            assert f"--venv: {path} is not a virtual environment" in done.stderr, done.stderr
        env = dict(os.environ, VIRTUAL_ENV=path)
        for command in ("serve", "mcp"):
            done = subprocess.run([pykernel_bin, command], input="", capture_output=True, text=True, env=env, timeout=60)
            assert done.returncode == 64 and f"VIRTUAL_ENV: {path} is not a virtual environment" in done.stderr, done.stderr
        # `run` ignores it, as python3 does.
        code = "import sys; print(sys.prefix == sys.base_prefix, sys.executable)"
        ours = subprocess.run([pykernel_bin, "run", "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert (ours.returncode, ours.stdout.split()[0], ours.stderr) == (0, "True", ""), path
    for command in (["run", "--venv", "", "-c", "pass"], ["serve", "--venv", ""], ["mcp", "--venv", ""]):
        done = subprocess.run([pykernel_bin, *command], input="", capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (64, ""), (command, done.stderr)
        assert "--venv must not be empty" in done.stderr, done.stderr
