import os

os.rmdir("/definitely/not/here")
