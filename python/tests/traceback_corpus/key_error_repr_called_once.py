class Key:
    def __repr__(self):
        print("repr called")
        return "Key()"

    def __hash__(self):
        return 1


{}[Key()]
