errors = []
for snippet in ["x = (1,", "y = 2 +* 3"]:
    try:
        exec(snippet)
    except SyntaxError as exc:
        errors.append(exc)
raise ExceptionGroup("bad snippets", errors)
