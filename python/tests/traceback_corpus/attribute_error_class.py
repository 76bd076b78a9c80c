class Greeter:
    @staticmethod
    def greet(name):
        return "hi " + name


Greeter.gret("bob")
