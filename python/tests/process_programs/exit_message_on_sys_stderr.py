# sys.exit with a message: python3 prints it on sys.stderr, whatever the program made that.
import sys

sys.stderr.write("partial line on the real stderr ")
sys.stderr = sys.stdout
print("stdout first")
sys.exit("the message, on the replaced stderr")
