settings = {"host": "localhost", "port": 8080}
timeout = settings["timeout"]
