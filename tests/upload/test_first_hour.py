"""A W&B user's first hour against a server: one that is down, a mistyped URL, where the run can be seen, and an
experiment that never runs."""
import logging
import threading

import pytest

from ml_dash import Experiment
from ml_dash.server.testing import free_port

from .conftest import get_json


def make(tmp_path, remote, prefix="run", **kwargs):
    return Experiment(namespace="alice", workspace="proj", prefix=prefix, remote=remote,
                      local_root=str(tmp_path / "logs"), **kwargs)


@pytest.mark.timeout(60)
def test_server_never_reached_run_end_returns_without_waiting_the_upload_timeout(tmp_path, remote_env, caplog):
    """A closed port: the run's end does not wait ML_DASH_UPLOAD_TIMEOUT (an hour here, so a wait would hit the test's
    timeout); one warning says `ml-dash sync` sends the run later."""
    remote_env(UPLOAD_TIMEOUT=3600, RETRY_BASE=0.05, RETRY_CAP=0.2)
    caplog.set_level(logging.WARNING, logger="ml_dash")
    for i in range(3):  # a sweep: every run's end returns at once
        exp = make(tmp_path, f"http://127.0.0.1:{free_port()}", prefix=f"sweep-{i}")
        with exp.run():
            exp.metrics.log(step=0, loss=1.0)
        assert exp.status == "completed"
    never = [r.getMessage() for r in caplog.records if "never reached" in r.getMessage()]
    assert len(never) == 3 and all("ml-dash sync" in m for m in never), never


@pytest.mark.timeout(60)
def test_run_end_stops_waiting_when_the_server_goes_away(tmp_path, remote_env, caplog):
    """The server answered at first, then went away: the end waits only while the upload makes progress."""
    from ml_dash.server.testing import running_server

    remote_env(UPLOAD_TIMEOUT=3600, RETRY_BASE=0.05, RETRY_CAP=0.2)
    with running_server(tmp_path / "data") as url:
        exp = make(tmp_path, url)
        exp.run()
        exp.metrics.log(step=0, loss=1.0)
        exp.flush()
    exp.metrics.log(step=1, loss=0.5)
    exp.complete()  # returns once an attempt failed with nothing acknowledged since
    assert exp.status == "completed"
    assert any("not finished" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("suffix", ["/graphql", "/api/v1", "/api/v1/", "/#/ws/alice/proj", "/#/exp/abc", "/"])
def test_dashboard_and_api_urls_are_normalised_with_a_warning(tmp_path, remote_env, suffix, caplog):
    remote_env()
    base = f"http://127.0.0.1:{free_port()}"
    caplog.set_level(logging.WARNING, logger="ml_dash")
    exp = make(tmp_path, base + suffix)
    assert exp.remote == base
    if suffix != "/":
        assert any("remote=" in r.getMessage() and base in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", ["http://127.0.0.1:8000/some/where", "http://127.0.0.1:8000/?x=1",
                                 "127.0.0.1:8000", "ftp://127.0.0.1"])
def test_remote_urls_that_cannot_be_a_server_are_refused_naming_remote(tmp_path, remote_env, bad):
    remote_env()
    with pytest.raises(ValueError, match="remote="):
        make(tmp_path, bad)


@pytest.mark.timeout(60)
def test_https_against_an_http_server_fails_fast_suggesting_http(tmp_path, remote_env, server, caplog):
    remote_env(UPLOAD_TIMEOUT=3600)
    caplog.set_level(logging.WARNING, logger="ml_dash")
    exp = make(tmp_path, server.replace("http://", "https://"))
    with exp.run():
        exp.metrics.log(step=0, loss=1.0)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "http://" + server.split("://")[1] in text and "TLS" in text, text


def test_url_is_printed_once_and_exposed(tmp_path, remote_env, server, capsys):
    remote_env()
    exp = make(tmp_path, server)
    assert make(tmp_path, None, prefix="local").url is None
    with exp.run():
        exp.metrics.log(step=0, loss=1.0)
    assert exp.url == f"{server}/#/exp/{exp.experiment_id}"
    err = capsys.readouterr().err
    assert err.count(exp.url) == 1, err
    with exp.run():  # a second run of the same object: not printed again
        pass
    assert exp.url not in capsys.readouterr().err


def test_url_before_the_server_answered_is_the_workspace(tmp_path, remote_env):
    remote_env()
    base = f"http://127.0.0.1:{free_port()}"
    exp = make(tmp_path, base)
    assert exp.url == f"{base}/#/ws/alice/proj"


def test_an_experiment_constructed_but_never_run_is_not_registered(tmp_path, remote_env, server):
    remote_env()
    make(tmp_path, server, prefix="idle", tags=["x"])
    ran = make(tmp_path, server, prefix="ran")
    with ran.run():
        pass
    prefixes = [e["prefix"] for e in get_json(f"{server}/api/v1/experiments")["experiments"]]
    assert prefixes == ["ran"]


@pytest.mark.timeout(60)
def test_a_401_says_how_to_pass_the_token(tmp_path, remote_env, caplog):
    from ml_dash.server.testing import running_server

    remote_env()
    caplog.set_level(logging.WARNING, logger="ml_dash")
    with running_server(tmp_path / "data", tokens=["s3cret"]) as url:
        exp = make(tmp_path, url)
        with exp.run():
            exp.metrics.log(step=0, loss=1.0)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "401" in text and "ML_DASH_TOKEN" in text and "ml-dash sync --token" in text, text
