"""What a new user runs into with the reader and the terminal commands: workspaces without a namespace, paths on a
server, rm's restore hint, export (no overwrite, a closed pipe, a time column), unknown keys, datetimes, show's
package list and ls outside a root."""
from __future__ import annotations

import csv
import datetime
import os
import subprocess
import sys

import pytest

from ml_dash import Api, Experiment
from ml_dash.cli import main
from ml_dash.format.layout import read_meta, write_meta

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_workspace_without_namespace_filters_locally(logged, capsys):
    _, root = logged
    assert len(Api(local_root=root).experiments(workspace="vision")) == 4
    assert len(Api(local_root=root).experiments(workspace="nlp")) == 0
    code, out, err = _run(capsys, "ls", "--root", root, "--workspace", "nlp")
    assert code == 0 and "vit-1" not in out


def test_show_and_export_take_a_path_on_a_server(logged, capsys, tmp_path):
    base_url, _ = logged
    code, out, err = _run(capsys, "show", "--remote", base_url, "alice/vision/sweeps/a/vit-1")
    assert code == 0 and "alice/vision/sweeps/a/vit-1" in out, err
    code, _, err = _run(capsys, "export", "--remote", base_url, "alice/vision/resnet-1", "--out",
                        str(tmp_path / "r.csv"))
    assert code == 0, err


def test_remote_rm_hint_names_the_server(logged, capsys):
    base_url, _ = logged
    code, out, _ = _run(capsys, "rm", "--remote", base_url, "alice/vision/mlp")
    assert code == 0 and f"ml-dash rm --restore --remote {base_url} " in out
    restore = out.split("`")[1].split()[1:]
    assert _run(capsys, *restore)[0] == 0
    assert Api(remote=base_url).experiment("alice/vision/mlp").deleted_at is None


def test_export_refuses_to_overwrite_and_has_a_time_column(logged, capsys, tmp_path, monkeypatch):
    _, root = logged
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "export", "--root", root, "alice/vision/resnet-1", "--keys", "loss")[0] == 0
    (tmp_path / "resnet-1.csv").write_text("mine")
    code, _, err = _run(capsys, "export", "--root", root, "alice/vision/resnet-1")
    assert code == 1 and "exists" in err and "--force" in err
    assert (tmp_path / "resnet-1.csv").read_text() == "mine"
    assert _run(capsys, "export", "--root", root, "alice/vision/resnet-1", "--force")[0] == 0
    rows = list(csv.reader(open(tmp_path / "resnet-1.csv")))
    assert rows[0][:2] == ["step", "time"]
    times = [datetime.datetime.fromisoformat(r[1]) for r in rows[1:]]
    assert all(t.tzinfo is not None for t in times) and times == sorted(times)
    started = Api(local_root=root).experiment("alice/vision/resnet-1").started_at
    assert abs(times[0].timestamp() - started) < 60


def test_export_to_a_closed_pipe_is_quiet(logged):
    _, root = logged
    read, write = os.pipe()
    os.close(read)  # the reader (`| head`) is gone before anything is written
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run([sys.executable, "-m", "ml_dash.cli", "export", "--root", root, "alice/vision/resnet-1",
                           "--out", "-"], stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, env=env)
    os.close(write)
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr, done.stderr
    assert done.returncode == 0


def test_history_with_an_unknown_key_names_it_and_the_known_ones(logged):
    _, root = logged
    record = Api(local_root=root).experiment("alice/vision/resnet-1")
    with pytest.raises(KeyError, match=r"'lss'.*loss"):
        record.history(keys=["lss"])
    with pytest.raises(KeyError, match="'lss'"):
        record.to_numpy(["loss", "lss"])
    assert len(record.to_numpy(["loss"], step_min=10_000)["step"]) == 0  # no points in range is not an error


def test_to_pandas_times_are_utc_datetimes(logged):
    pytest.importorskip("pandas")
    base_url, root = logged
    for api in (Api(local_root=root), Api(remote=base_url)):
        frame = api.experiments().to_pandas()
        assert str(frame["started_at"].dtype) == "datetime64[ns, UTC]"
        assert frame["deleted_at"].isna().all()


def test_show_lists_packages_only_when_asked(tmp_path, capsys):
    root = str(tmp_path / ".ml-logger")
    exp = Experiment(namespace="a", workspace="w", prefix="p", local_root=root, capture_environment=False)
    with exp.run():
        pass
    meta = read_meta(exp.local_path)
    meta["environment"] = {"python": "3.11", "packages": {f"pkg{i}": "1.0" for i in range(300)}}
    write_meta(exp.local_path, meta)
    code, out, _ = _run(capsys, "show", "--root", root, "a/w/p")
    assert code == 0 and "pkg17" not in out and "300" in out and "--packages" in out
    code, out, _ = _run(capsys, "show", "--root", root, "a/w/p", "--packages")
    assert code == 0 and "pkg17" in out


def test_ls_outside_a_root_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var.startswith(("ML_DASH_", "ML_LOGGER_")):
            monkeypatch.delenv(var)
    code, _, err = _run(capsys, "ls")
    assert code == 0 and str(tmp_path / ".ml-logger") in err and "--remote" in err
