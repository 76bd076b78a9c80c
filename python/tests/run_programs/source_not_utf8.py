# No cookie, and a byte that is not UTF-8 on line 3.
print('never runs')
name = 'é'
