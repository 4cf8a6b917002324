"""Remote sync: the background uploader (``attach_uploader``) and ``ml-dash sync`` for runs logged offline."""
from ml_dash.client.upload.uploader import attach_uploader

__all__ = ["attach_uploader"]
