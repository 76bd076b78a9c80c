# A SyntaxError the code raises naming its own file (a cell's name in a context) with text None:
# python3 prints no line for it (only the compiler's own errors are re-read from the file).
import sys

raise SyntaxError("custom", (sys._getframe().f_code.co_filename, 1, 1, None))
