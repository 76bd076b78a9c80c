def report():
    return completely_unknown_identifier_xyz * 2


report()
