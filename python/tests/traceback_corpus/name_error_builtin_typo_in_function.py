def measure(seq):
    return lenn(seq)


measure("abc")
