def work():
    try:
        return 1 / 0
    finally:
        print(undefined_in_finally)


work()
