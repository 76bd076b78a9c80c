errors = []
for name in ["a", "b"]:
    exc = ValueError(f"bad {name}")
    exc.add_note(f"first line for {name}\nsecond line for {name}")
    errors.append(exc)
group = ExceptionGroup("validation", errors)
group.add_note("group note")
raise group
