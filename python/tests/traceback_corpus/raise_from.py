class ConfigError(Exception):
    pass


def load(text):
    try:
        return int(text)
    except ValueError as exc:
        raise ConfigError("port must be a number") from exc


load("eighty")
