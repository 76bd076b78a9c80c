mapping = {}
mapping[""]
