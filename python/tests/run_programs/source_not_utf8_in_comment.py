# é: a byte that is not UTF-8, in a comment (a string's tokenizer skips it; python3's file reader refuses it)
print('never runs')
