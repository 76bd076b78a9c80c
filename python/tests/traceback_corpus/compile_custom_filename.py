code = compile("items = []\nitems[3]\n", "<generated>", "exec")
exec(code, {})
