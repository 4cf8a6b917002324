from tests.upload.conftest import remote_env, server  # noqa: F401  (a real server and fast upload settings)
