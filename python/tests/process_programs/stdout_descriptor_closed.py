# The code closes descriptor 1 under sys.stdout: the flush at exit fails (reported once, status 120).
import sys, os
fd = os.dup(1)
os.close(1)
print("into closed fd")
