numbers = [4, 2, 0, 1]
inverses = [1 / n for n in numbers]
