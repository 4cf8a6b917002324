"""The upload to a server: the background uploader (``attach_uploader``), and ``ml-dash sync``, the command that runs
the same upload for runs logged offline or interrupted (docs/remote.md)."""
from ml_dash.client.upload.uploader import attach_uploader

__all__ = ["attach_uploader"]
