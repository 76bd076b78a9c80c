def fetch(key):
    try:
        return {"a": 1}[key]
    except KeyError as exc:
        raise LookupError("fetch failed") from exc
# %% cell 2
def process(keys):
    return [fetch(k) for k in keys]


process(["a", "zzz"])
