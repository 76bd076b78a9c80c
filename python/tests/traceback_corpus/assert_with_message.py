values = [1, 2]
assert len(values) > 3, f"need more than 3 values, got {len(values)}"
