word = "hello"
shout = word.uper()
