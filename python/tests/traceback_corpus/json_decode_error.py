import json

config = json.loads("{")
