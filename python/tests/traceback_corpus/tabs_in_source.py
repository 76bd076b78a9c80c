def tabbed(values):
	result = []
	for v in values:
		result.append(10 % v)
	return result


tabbed([1, 0])
