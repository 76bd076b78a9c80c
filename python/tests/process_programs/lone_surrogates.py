# Text python3 cannot encode: stderr escapes it (backslashreplace); stdout's error handler
# depends on the locale (strict under a UTF-8 locale, surrogateescape under C/POSIX).
import sys

print(sys.stdout.encoding, sys.stdout.errors, sys.stderr.encoding, sys.stderr.errors)
print("stderr: \udcff \ud800", file=sys.stderr)
sys.stdout.flush()
print("stdout: \udcff")
print("after")
