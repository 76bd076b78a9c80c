message = “hello”
