"""``ml_dash.Api``: experiments, their metrics, logs and files, read back from a server or a local root.

Its records (``ExperimentRecord``, in a ``Records`` sequence) come from ``Api.experiments``.
"""
from ml_dash.query.api import Api
from ml_dash.query.errors import ApiError

__all__ = ["Api", "ApiError"]
