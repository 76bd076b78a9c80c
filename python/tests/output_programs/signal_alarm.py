# Process-wide signals with a Python handler reach the code as in python3 (one thread there):
# an alarm interrupts a sleep, a loop and a wait for a subprocess.
import signal
import subprocess
import time


def on_alarm(signum, frame):
    raise TimeoutError('alarm')


print(signal.signal(signal.SIGALRM, on_alarm), signal.getsignal(signal.SIGALRM) is on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.1)
started = time.monotonic()
try:
    time.sleep(10)
except TimeoutError as e:
    print('sleep interrupted:', e, time.monotonic() - started < 5)
signal.setitimer(signal.ITIMER_REAL, 0.1)
count = 0
try:
    while True:
        count += 1
except TimeoutError:
    print('loop interrupted', count > 0)
signal.alarm(1)
started = time.monotonic()
try:
    subprocess.run(['sleep', '10'])
except TimeoutError:
    print('subprocess interrupted', time.monotonic() - started < 5)
print(signal.signal(signal.SIGALRM, signal.SIG_DFL) is on_alarm)
