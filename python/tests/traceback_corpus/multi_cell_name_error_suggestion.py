experiment_results = [0.5, 0.7]
# %% cell 2
print(experiment_result)
