left = (1, 2)
right = {"a": 1}
result = (left) + (right)
