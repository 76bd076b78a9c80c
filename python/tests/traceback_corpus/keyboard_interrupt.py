def long_task():
    for step in range(10):
        if step == 2:
            raise KeyboardInterrupt


long_task()
