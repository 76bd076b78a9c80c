value = 3
text = f"value: {}"
