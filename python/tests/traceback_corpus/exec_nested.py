program = """
def helper(x):
    return x / 0

helper(5)
"""
exec(program)
