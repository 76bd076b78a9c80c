class Opaque:
    def __dir__(self):
        raise RuntimeError("no dir")

    def method(self):
        pass


Opaque().methd()
