"""Hypothesis profiles for the property-based tests: ``ci`` (the default, a few seconds) and ``long`` (a campaign,
``HYPOTHESIS_PROFILE=long scripts/fuzz.sh``); and a real server subprocess shared by a module's tests."""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from ml_dash.server.testing import running_server

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# CI is derandomized (the same examples every run, so a red CI is reproducible); scripts/fuzz.sh explores with "long".
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("long", max_examples=2000, print_blob=True, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(ci: int) -> int:
    """``ci`` examples under the ci profile; the profile's (much larger) count under any other."""
    return ci if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else settings().max_examples


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory) -> str:
    """Base URL of a real ``python -m ml_dash.server`` (SQLite) on a free loopback port, shared by a module."""
    with running_server(tmp_path_factory.mktemp("fuzz-data")) as base_url:
        yield base_url
