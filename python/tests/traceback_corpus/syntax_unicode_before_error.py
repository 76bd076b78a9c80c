données = {"clé": 1}
résumé = (données["clé"] 2)
