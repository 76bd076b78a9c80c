def build(name, size, *, color):
    raise ValueError(f"bad {name}: {size} {color}")


widget = build(
    "button",
    size=3,
    color="red",
)
