words = ["alpha", "beta", None]
lengths = {w: len(w) for w in words}
