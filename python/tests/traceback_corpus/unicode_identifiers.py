def prüfe(größe, ñandú):
    résultat = größe / ñandú
    return résultat


prüfe(1, 0)
