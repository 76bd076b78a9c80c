data = {"k": 1}
value =	data["k"] +	data["missing"]
