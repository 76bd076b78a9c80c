def last_but_ten(items):
    return items[len(items) + 10]


last_but_ten([1, 2, 3])
