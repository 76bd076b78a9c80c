first = ValueError("first")
second = KeyError("second")
first.__context__ = second
second.__context__ = first
raise first
