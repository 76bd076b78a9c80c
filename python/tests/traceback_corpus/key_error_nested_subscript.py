data = {"users": [{"name": "ann", "tags": ["a"]}]}
print(data["users"][0]["tags"][3])
