try:
    raise ValueError("original problem")
except ValueError:
    raise KeyboardInterrupt("interrupted while handling")
