total_amount = 42


def show():
    print(total_amont)


show()
