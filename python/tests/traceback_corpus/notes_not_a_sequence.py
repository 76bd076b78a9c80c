exc = ValueError("notes is an int")
exc.__notes__ = 42
raise exc
