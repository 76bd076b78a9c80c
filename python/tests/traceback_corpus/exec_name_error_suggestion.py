namespace = {"alpha_value": 1}
exec("print(alpha_valu)", namespace)
