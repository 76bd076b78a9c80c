# Lone surrogates: stderr writes them as backslash escapes; stdout writes U+DC80...U+DCFF as the
# bytes they stand for and raises for any other, after what the print wrote before it.
import sys

sys.stderr.write("undecodable \udcff and \ud800 on stderr\n")
print("escaped \udcff on stdout")
try:
    print("kept", "\ud800")
except UnicodeEncodeError as exc:
    print("\ncaught:", exc, file=sys.stderr)
print("separator", "x", sep="\udfff")
