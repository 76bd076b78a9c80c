class ValidationError(Exception):
    def __init__(self, field, problem):
        super().__init__(f"{field}: {problem}")
        self.field = field


def validate(record):
    if "email" not in record:
        raise ValidationError("email", "is required")


validate({"name": "x"})
