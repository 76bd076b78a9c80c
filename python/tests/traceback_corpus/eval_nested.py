expression = "1 + None"
result = eval(expression)
