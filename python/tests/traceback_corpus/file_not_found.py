with open("/nonexistent/dir/data.txt") as handle:
    handle.read()
