class G(ExceptionGroup):
    @property
    def exceptions(self):
        raise RuntimeError("no exceptions")
raise G("g", [ValueError(1)])
