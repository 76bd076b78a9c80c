# A message with a lone surrogate: python3's stderr writes it as a backslash escape, and so does
# the error record's text (which UTF-8 could not carry otherwise).
class Undecodable(Exception):
    def __str__(self):
        return "caf\u00e9 \udcff"


def fail():
    raise Undecodable()


fail()
