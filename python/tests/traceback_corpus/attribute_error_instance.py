class Account:
    def __init__(self, balance):
        self.balance = balance

    def describe(self):
        return f"balance={self.balanse}"


Account(10).describe()
