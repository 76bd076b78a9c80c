from datetime import datetime


def parse_date(text):
    return datetime.strptime(text, "%Y-%m-%d")


parse_date("2024/01/02")
