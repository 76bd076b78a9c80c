# What the program finds installed for each signal (the real-time ones are the engine's to use).
import signal

for number in sorted(signal.valid_signals()):
    if number < signal.SIGRTMIN:
        print(signal.Signals(number).name, signal.getsignal(number))
