def prüfe(größe):[
    return größe
