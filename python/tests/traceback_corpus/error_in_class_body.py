class Settings:
    name = "app"
    size = int(name)
