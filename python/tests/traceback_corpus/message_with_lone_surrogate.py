x = chr(0xdcff)
message = 'caf\xe9 ' + x
raise OSError(message)
