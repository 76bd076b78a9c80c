class Parser:
    class Error(Exception):
        pass

    def parse(self, text):
        raise Parser.Error(f"cannot parse {text!r}")


Parser().parse("???")
