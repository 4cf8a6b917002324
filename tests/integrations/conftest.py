import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing is ever downloaded from a model hub in these tests
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A local root for this test, isolated from the user's ML_DASH_* / ML_LOGGER_* variables."""
    for var in list(os.environ):
        if var.startswith(("ML_DASH_", "ML_LOGGER_")):
            monkeypatch.delenv(var)
    monkeypatch.setenv("ML_DASH_CONSOLE", "0")  # pytest holds fds 1 and 2 (tests/conftest.py)
    return str(tmp_path / "root")
