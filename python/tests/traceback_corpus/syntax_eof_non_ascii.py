résumé = 1
if résumé:
