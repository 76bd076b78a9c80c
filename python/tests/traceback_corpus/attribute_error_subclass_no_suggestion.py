class ConfigError(AttributeError):
    pass


class Config:
    verbose = True

    def __getattr__(self, name):
        raise ConfigError(f"no setting {name!r}", name=name, obj=self)


Config().verbos
