"""Trace and profile functions the code sets (``sys.settrace``, ``sys.setprofile``: debuggers,
tracers, coverage, profilers) see the code's frames only, never the engine's, and one that raises
fails the code's run as in python3, never the engine's work around it."""

import subprocess

import pytest
from pykernel import PyKernelTimeoutError

ISOLATIONS = ("namespace", "process")

TRACER = (
    "import sys\n"
    "seen = []\n"
    "def tracer(frame, event, arg):\n"
    "    seen.append((event, frame.f_code.co_filename, frame.f_code.co_name))\n"
    "    return tracer\n"
    "def profiler(frame, event, arg):\n"
    "    seen.append(('profile ' + event, frame.f_code.co_filename, frame.f_code.co_name))\n"
    "sys.settrace(tracer)\n"
    "sys.setprofile(profiler)\n"
)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_tracer_and_a_profiler_see_the_codes_frames_only(module_kernel, isolation):
    context = module_kernel.create_context(isolation=isolation)
    try:
        assert module_kernel.run_code(TRACER, context=context).status == "ok"
        # Runs that take the engine's paths around the code: an error record, a displayed value
        # and a main result, output.
        assert module_kernel.run_code("def f():\n    return 6 * 7\nf()", context=context).status == "ok"
        assert module_kernel.run_code("1/0", context=context).status == "error"
        assert module_kernel.run_code("display({'a': 1})\nprint('p')", context=context).status == "ok"
        rich = "class H:\n    def _repr_html_(self):\n        return '<b>h</b>'\nH()"
        assert module_kernel.run_code(rich, context=context, envs={"TRACED": "1"}).status == "ok"
        # And the timeout's exception, made by the engine where the code is.
        with pytest.raises(PyKernelTimeoutError):
            module_kernel.run_code("import time\ntime.sleep(5)", context=context, timeout=0.2)
        result = module_kernel.run_code(
            "sys.settrace(None)\nsys.setprofile(None)\n"
            "print(sorted({name for _, file, name in seen if not file.startswith('<cell-')}))\n"
            "print(sorted({file for _, file, _ in seen if file.startswith('<cell-')}))\n"
            "print(('call', '<cell-2>', 'f') in seen)", context=context)
        others, cells, called = result.stdout.splitlines()
        # `display` is a function the code called (showing a built-in value calls no helper).
        # Nothing the engine runs around the code is seen (a run's `env` set and restored, the
        # main result's representations: the class's `_repr_html_` too, which the engine calls;
        # the timeout's exception).
        assert others == "['display']", result.stdout
        assert cells == "['<cell-1>', '<cell-2>', '<cell-3>', '<cell-4>', '<cell-5>', '<cell-6>', '<cell-7>']", result.stdout
        assert called == "True"
    finally:
        module_kernel.delete_context(context)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_the_engines_work_when_the_code_lets_a_cells_function_go_is_not_traced(module_kernel, isolation):
    """The engine forgets a cell's source when the last function defined in it is freed (a weak
    reference's callback): that happens in the code's traced `del`, and is not the code's."""
    context = module_kernel.create_context(isolation=isolation)
    try:
        assert module_kernel.run_code("def g():\n    return 1", context=context).status == "ok"
        assert module_kernel.run_code(TRACER, context=context).status == "ok"
        assert module_kernel.run_code("del g", context=context).status == "ok"
        result = module_kernel.run_code(
            "sys.settrace(None)\nsys.setprofile(None)\n"
            "print(sorted({name for _, file, name in seen if not file.startswith('<cell-')}))", context=context)
        assert result.stdout == "[]\n"
    finally:
        module_kernel.delete_context(context)


def test_a_tracer_that_raises_fails_the_next_run_as_in_python3(module_kernel):
    """Its exception is raised in the next traced frame, a namespace context's first run in
    another context here (it failed the engine's creation of that namespace: -32603), and
    CPython then drops the tracer."""
    first, second = module_kernel.create_context(), module_kernel.create_context()
    try:
        assert module_kernel.run_code("import sys\nsys.settrace(lambda *a: 1/0)", context=first).status == "ok"
        failed = module_kernel.run_code("print('not reached')", context=second)
        assert failed.status == "error" and failed.error.name == "ZeroDivisionError", failed.error
        assert module_kernel.run_code("print('traced no more')", context=second).stdout == "traced no more\n"
    finally:
        module_kernel.delete_context(first)
        module_kernel.delete_context(second)


_LEFT_SET = (
    "import sys\n"
    "def tracer(frame, event, arg):\n"
    "    print('trace', event, frame.f_code.co_name, frame.f_code.co_filename.rsplit('/', 1)[-1])\n"
    "    return tracer\n"
    "def profiler(frame, event, arg):\n"
    "    print('profile', event, frame.f_code.co_name, frame.f_code.co_filename.rsplit('/', 1)[-1])\n"
    "def f():\n    return 1\n"
)


@pytest.mark.parametrize("program", [
    # Set by the code and left set: python3 calls them for nothing after the last line.
    _LEFT_SET + "sys.settrace(tracer)\nf()\n",
    _LEFT_SET + "sys.setprofile(profiler)\nf()\n",
    # Its atexit handlers (a builtin one that fails too) are traced, as python3 calls them.
    _LEFT_SET + "import atexit\natexit.register(f)\natexit.register(int, 'x')\n"
                "atexit.register(lambda: print('last handler'))\nsys.settrace(tracer)\nsys.setprofile(profiler)\n",
    # With threading imported (or a thread started), python3 joins the threads with a traced function.
    _LEFT_SET + "import threading\nsys.settrace(tracer)\nf()\n",
    _LEFT_SET + "from threading import Thread\nThread(target=f).start()\nsys.setprofile(profiler)\n",
    _LEFT_SET + "import threading\nthreading.settrace(tracer)\nthreading.setprofile(profiler)\nf()\n",
    # And an uncaught exception, a SystemExit, a replaced excepthook.
    _LEFT_SET + "sys.settrace(tracer)\nsys.setprofile(profiler)\n1/0\n",
    _LEFT_SET + "sys.settrace(tracer)\nsys.exit('bye')\n",
    _LEFT_SET + "sys.excepthook = lambda *a: print('hooked')\nsys.settrace(tracer)\nraise KeyError\n",
])
def test_a_tracer_left_set_by_a_file_sees_what_python3_shows_it_at_exit(pykernel_bin, tmp_path, program):
    """`pykernel run`: after the last line, a trace or profile function sees the atexit handlers
    and threading's join, as python3's, never the engine's end of the program."""
    path = tmp_path / "traced.py"
    path.write_text(program)
    outcomes = [subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
                for command in (["/usr/bin/python3.11", "traced.py"], [pykernel_bin, "run", "traced.py"])]
    (theirs, ours) = [(done.returncode, done.stdout, done.stderr) for done in outcomes]
    assert ours == theirs
