def find(seq, target):
    for item in seq:
        if item == target:
            return item


find([1, 2], 3).bit_length()
