s = f'{'  # the line after a UTF-8 byte order mark: python3 shows the mark, the caret counts it
