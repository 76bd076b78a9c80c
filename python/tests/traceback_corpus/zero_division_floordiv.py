def chunks(total, size):
    return total // size


chunks(10, 0)
