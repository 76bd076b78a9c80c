colour = "global"


def paint():
    colour_local = "red"
    colr = None
    return color + colour_local


paint()
