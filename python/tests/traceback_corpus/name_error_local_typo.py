def tally(items):
    counter = 0
    for item in items:
        counter += item
    return countr + 1


print(tally([1, 2, 3]))
