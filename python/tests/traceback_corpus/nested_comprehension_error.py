matrix = [[1, 2], [3, "4"]]
doubled = [[x + 1 for x in row] for row in matrix]
