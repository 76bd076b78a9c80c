class G(ExceptionGroup):
    @property
    def exceptions(self):
        return ("not an exception", 5)
raise G("g", [ValueError(1)])
