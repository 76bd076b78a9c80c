"""What namespace and process contexts must do alike: output between runs, a run's processes
after its stop, the environment code sees, the end of a run cut short.

Each case starts its own ``pykernel serve`` (most of them with ``--isolation process`` too).
"""

import os
import socket

import pytest

from pykernel_raw import RawServer

def serve(pykernel_bin, *args):
    return RawServer(pykernel_bin, list(args))


def close(server):
    server.close_stdin()
    assert server.wait_exit() == 0
    server.join_output()


def run(server, context, code, **params):
    return server.result("code.run", {"context": context, "code": code, **params}, timeout=30)


def test_a_threads_descriptor_output_outlives_the_deletion_of_the_context_that_ran_after_it(pykernel_bin, tmp_path):
    # `a` starts a thread; `b` runs after it and is deleted. Once `b`'s namespace is freed (an
    # object of it tells the thread, from its __del__), the thread writes to descriptor 1 (whose
    # writer cannot be told): that belongs to the live context that ran last, `a`, not nowhere.
    # (A process context's worker deleted its warm-up's scratch context so, after the context's
    # first run had started a thread.)
    listener = socket.socket(socket.AF_UNIX)
    listener.settimeout(30)
    listener.bind(str(tmp_path / "s"))
    listener.listen(1)
    server = serve(pykernel_bin)
    try:
        a = server.result("context.create")["id"]
        b = server.result("context.create")["id"]
        assert run(server, a, (
            "import fcntl, os, socket, struct, sys, termios, threading, time\n"
            f"peer = socket.socket(socket.AF_UNIX)\npeer.connect({str(tmp_path / 's')!r})\n"
            "go, sys.late_go = os.pipe()\n"
            "def later():\n"
            "    os.read(go, 1)\n"
            "    os.write(1, b'from thread\\n')\n"
            "    while struct.unpack('i', fcntl.ioctl(1, termios.FIONREAD, b'1234'))[0]:  # until the server read it\n"
            "        time.sleep(0.001)\n"
            "    peer.send(b'w')\n"
            "threading.Thread(target=later).start()\n"))["status"] == "ok"
        peer, _ = listener.accept()
        peer.settimeout(30)
        assert run(server, b, (
            "import os, sys\n"
            "class Freed:\n"
            "    def __del__(self, go=sys.late_go, write=os.write):  # the globals are cleared first\n"
            "        write(go, b'g')\n"
            "freed = Freed()\n"))["status"] == "ok"
        server.result("context.delete", {"id": b})
        assert peer.recv(1) == b"w"
        assert run(server, a, "print('next')")["stdout"] == "from thread\nnext\n"
    finally:
        close(server)
        listener.close()
