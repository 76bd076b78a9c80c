# What a forked child (os.fork, multiprocessing with fork) prints reaches the output, as in python3.
import multiprocessing
import os
import sys


def work(number):
    print("worker", number, flush=True)
    print("worker stderr", number, file=sys.stderr)
    return number * number


if __name__ == "__main__":
    print("before fork", flush=True)
    pid = os.fork()
    if pid == 0:
        print("child")
        sys.stdout.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    print("parent")
    multiprocessing.set_start_method("fork")
    process = multiprocessing.Process(target=work, args=(7,))
    process.start()
    process.join()
    print("exit code", process.exitcode)
    with multiprocessing.Pool(2) as pool:
        print(pool.map(abs, [-1, -2, -3]))
