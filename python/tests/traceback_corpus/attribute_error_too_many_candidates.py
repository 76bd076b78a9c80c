class Big:
    pass


for i in range(800):
    setattr(Big, f"attribute_{i}", i)
Big().attribute_1x
