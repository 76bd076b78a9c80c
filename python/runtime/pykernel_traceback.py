"""Temporary: replaced by the fidelity module."""
import traceback
def exception_name(exc):
    t = type(exc)
    if t.__module__ in ("builtins", "__main__"):
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"
def exception_value(exc):
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"
def format_exception(exc, *, skip_frames=0):
    return "".join(traceback.format_exception(exc))
