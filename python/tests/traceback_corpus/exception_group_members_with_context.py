def convert(text):
    try:
        return int(text)
    except ValueError:
        raise TypeError(f"cannot convert {text!r}")


errors = []
for text in ["1", "x", "y"]:
    try:
        convert(text)
    except TypeError as exc:
        exc.add_note(f"input was {text}")
        errors.append(exc)
raise ExceptionGroup("conversion", errors)
