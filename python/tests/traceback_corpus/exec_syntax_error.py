source = "value = (1, 2"
exec(source)
