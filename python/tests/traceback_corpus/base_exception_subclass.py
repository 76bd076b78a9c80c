class Abort(BaseException):
    pass


def run():
    raise Abort("stop everything")


run()
