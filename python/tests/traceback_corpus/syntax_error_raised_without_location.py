raise SyntaxError("rule 7 is malformed")
