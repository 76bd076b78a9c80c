class RemoteError(Exception):
    pass


RemoteError.__module__ = "service.errors"
raise RemoteError("server said no")
