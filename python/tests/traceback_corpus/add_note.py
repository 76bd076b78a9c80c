def parse(line_no, text):
    try:
        return float(text)
    except ValueError as exc:
        exc.add_note(f"while parsing line {line_no}")
        exc.add_note("hint: use a dot as decimal separator")
        raise


parse(3, "1,5")
