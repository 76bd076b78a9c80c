with open('f') as fh:
    text = fh.read()
words = text.split(()
asser(t words, 'empty'
