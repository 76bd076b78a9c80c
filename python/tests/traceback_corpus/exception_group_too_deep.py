group = ExceptionGroup("leaf", [ValueError("deepest")])
for level in range(12):
    group = ExceptionGroup(f"level {level}", [group])
raise group
