names = ['a', 'b']
labels = [f'{,n}' for n in names]
