# How the standard streams look to a program (run with descriptor 0 closed too: sys.stdin is None).
import sys

print(sys.stdin)
print(sys.stdout, sys.stderr)
print(sys.stdout.isatty(), sys.stdout.fileno(), sys.stderr.fileno())
print(sys.stdout.line_buffering, sys.stderr.line_buffering, sys.stdout.write_through)
print(type(sys.stdout.buffer).__name__, type(sys.stdout.buffer.raw).__name__)
print(sys.stdout is sys.__stdout__, sys.stderr is sys.__stderr__, sys.stdin is sys.__stdin__)
print(sys.flags.utf8_mode, sys.flags.ignore_environment, sys.flags.dont_write_bytecode)
