def task():
    try:
        {}["x"]
    except KeyError as exc:
        raise ValueError("task failed") from exc


try:
    task()
except ValueError as exc:
    raise ExceptionGroup("wrapper", [exc])
