# A line continuation, then an empty line: python3 shows the file's line of the error (empty),
# not the continued lines the string parser holds.
s = 'été'
x = 1 + \

