# More output than a pipe holds: a reader that stops early (`| head -1`) closes the pipe.
for i in range(200000):
    print(i)
