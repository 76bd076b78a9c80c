def check_total(items):
    total = sum(items)
    assert total == 10
    return total


check_total([1, 2, 3])
