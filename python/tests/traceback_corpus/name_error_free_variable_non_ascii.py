def outer():
    def inner():
        return café
    value = inner()
    café = 1
    return value


outer()
