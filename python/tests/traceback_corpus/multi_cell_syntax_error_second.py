ready = True
# %% cell 2
if ready
    print("go")
