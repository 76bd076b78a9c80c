def divide(a, b):
    return a / b


def mean(values):
    return divide(sum(values), len(values))
# %% cell 2
scores = []
print(mean(scores))
