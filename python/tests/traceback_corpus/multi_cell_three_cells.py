class Inventory:
    def __init__(self):
        self.items = {}

    def take(self, name):
        return self.items[name]
# %% cell 2
def restock(inventory, name):
    count = inventory.take(name)
    return count + 10
# %% cell 3
inv = Inventory()
restock(inv, "widgets")
