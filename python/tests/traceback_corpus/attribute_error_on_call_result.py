import os

os.pth.join("a", "b")
