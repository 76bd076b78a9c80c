data = b"caf\xe9"
text = data.decode("utf-8")
