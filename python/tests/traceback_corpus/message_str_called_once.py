class Loud:
    def __str__(self):
        print("str called")
        return "loud"

    def __repr__(self):
        print("repr called")
        return "Loud()"


raise ValueError(Loud())
