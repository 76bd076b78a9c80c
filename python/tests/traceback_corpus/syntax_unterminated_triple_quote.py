doc = """first line
second line
