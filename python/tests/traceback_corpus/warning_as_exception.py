import warnings

warnings.simplefilter("error")
warnings.warn("deprecated thing", DeprecationWarning)
