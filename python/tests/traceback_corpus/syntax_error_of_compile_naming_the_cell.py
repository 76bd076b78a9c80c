# The code's own compile() of a source under its file's name: python3 prints the compiler's
# error as it is (no line re-read from the file).
import sys

compile("x = 1\nreturn x\n", sys._getframe().f_code.co_filename, "exec")
