import os
import sys

import pytest

from ml_dash import Experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Read once at import: fixtures such as make_exp clear every ML_DASH_* variable for the test's own processes.
POSTGRES_URL = os.environ.get("ML_DASH_TEST_POSTGRES", "")
# Console capture redirects fds 1 and 2, which pytest's own capture holds: in-process tests run without it (the
# capture's own tests run in child processes, tests/distributed). Fixtures that clear ML_DASH_* set it again.
os.environ["ML_DASH_CONSOLE"] = "0"


@pytest.fixture
def make_exp(tmp_path, monkeypatch):
    """Factory for experiments rooted in this test's tmp dir, isolated from the user's env vars."""
    for var in list(os.environ):
        if var.startswith(("ML_DASH_", "ML_LOGGER_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ML_DASH_CONSOLE", "0")

    def make(prefix="run", **kwargs):
        kwargs.setdefault("namespace", "alice")
        kwargs.setdefault("workspace", "proj")
        kwargs.setdefault("local_root", str(tmp_path / ".ml-logger"))
        return Experiment(prefix=prefix, **kwargs)

    return make


@pytest.fixture
def run_python(tmp_path):
    """Run a Python snippet in a fresh interpreter (cwd = tmp_path) and return the CompletedProcess."""
    import subprocess

    def run(code, timeout=60, env=None):
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
        return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=timeout, env=full_env)

    return run


@pytest.fixture
def server_hosts(tmp_path, monkeypatch):
    """Two ml-dash server hosts (single-worker processes, each with its own data directory) sharing one PostgreSQL
    schema and one S3 bucket (moto's server on loopback), behind a round-robin ``RoundRobinProxy``: yields (host
    URLs, proxy). Skipped without ML_DASH_TEST_POSTGRES or moto."""
    from ml_dash.server.testing import RoundRobinProxy, postgres_schema, running_hosts

    if not POSTGRES_URL:
        pytest.skip("several hosts share one PostgreSQL: set ML_DASH_TEST_POSTGRES (see scripts/services.sh)")
    boto3 = pytest.importorskip("boto3", reason="S3 needs boto3 and moto[server] (requirements-dev.txt)")
    moto_server = pytest.importorskip("moto.server", reason="S3 needs boto3 and moto[server] (requirements-dev.txt)")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
                        "NO_PROXY": "127.0.0.1,localhost"}.items():
        monkeypatch.setenv(name, value)  # the server subprocesses inherit them
    s3 = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    s3.start()
    try:
        endpoint = "http://{}:{}".format(*s3.get_host_and_port())
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="hosts")
        with postgres_schema(POSTGRES_URL) as db, \
                running_hosts(2, tmp_path / "hosts", db, ["--files", "s3://hosts/ml", "--s3-endpoint", endpoint]) \
                as urls, RoundRobinProxy(urls) as proxy:
            yield urls, proxy
    finally:
        s3.stop()
