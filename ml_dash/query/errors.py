"""The Api's own error (a module of its own so that ``import ml_dash`` does not load the readers)."""


class ApiError(RuntimeError):
    """The server refused a request or could not be reached; the message says which and why."""
