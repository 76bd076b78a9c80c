rows = [{"v": 1}, {"v": 2}, {}]
total = sum(row["v"] for row in rows)
