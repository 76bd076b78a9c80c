def area(r):
    return 3.14 * r ** 2


area("2")