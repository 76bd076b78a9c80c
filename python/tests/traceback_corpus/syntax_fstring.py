width = 5
label = f"{width!z}"
