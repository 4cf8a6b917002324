"""``ml-dash ls``, ``show``, ``export`` and ``rm`` on the runs of tests/api/conftest.py, from the server and locally."""
from __future__ import annotations

import csv
import sys

import pytest

from ml_dash.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_prints_a_table_filtered_and_ordered_in_both_sources(logged, capsys):
    """ls --filter/--order-by/--columns gives the same table rows from the server and from the local root."""
    base_url, root = logged
    tables = []
    for source in (["--remote", base_url], ["--root", root]):
        code, out, err = _run(capsys, "ls", *source, "--filter", "tags contains 'baseline'", "--order-by", "prefix",
                              "--columns", "params.lr,metrics.loss")
        assert code == 0 and "2 of 2 experiment(s)" in err
        lines = out.splitlines()
        assert lines[0].split() == ["ID", "EXPERIMENT", "STATUS", "STARTED", "TAGS", "params.lr", "metrics.loss"]
        assert "alice/vision/mlp" in lines[1] and "auto" in lines[1] and "alice/vision/resnet-1" in lines[2]
        tables.append([line.split()[1:3] + line.split()[5:] for line in lines[1:]])
    assert tables[0] == tables[1]
    code, out, err = _run(capsys, "ls", "--remote", base_url, "--limit", "1")
    assert code == 0 and len(out.splitlines()) == 2 and "1 of 4" in err


def test_show_prints_params_metrics_tags_notes(logged, capsys):
    """show ID|PATH prints the record: status, tags, notes, params flattened, last metrics."""
    base_url, root = logged
    code, out, _ = _run(capsys, "show", "--root", root, "alice/vision/sweeps/a/vit-1")
    assert code == 0
    for text in ("status:     COMPLETED", "tags:       -", "notes:\n  notes of vit-1", "  model.layers   30",
                 "last metrics:", "  val/loss"):
        assert text in out
    experiment_id = out.split("id:")[1].split()[0]
    code, remote_out, _ = _run(capsys, "show", "--remote", base_url, experiment_id[:8])  # an id prefix will do
    assert code == 0 and remote_out.splitlines()[1:] == out.splitlines()[1:]


def test_show_lists_files_in_natural_order(logged, capsys):
    """show lists the experiment's files with their sizes, epoch_5 before epoch_10."""
    base_url, root = logged
    key = "alice/vision/mlp"
    for source in (("--root", root), ("--remote", base_url)):
        code, out, err = _run(capsys, "show", *source, key)
        assert code == 0, err
        key = out.split("id:")[1].split()[0]  # the server finds it by id
        files = out.split("files:\n")[1].splitlines()
        assert [line.split()[0] for line in files] == ["ckpt/epoch_5.txt", "ckpt/epoch_9.txt", "ckpt/epoch_10.txt",
                                                       "ckpt/epoch_100.txt", "results.json"]
        assert files[0].split()[1:] == ["5", "B"]


def test_export_csv_and_parquet(logged, capsys, tmp_path):
    """export writes the metrics by step: CSV without pandas, Parquet with pyarrow (a one-line error without)."""
    base_url, root = logged
    target = tmp_path / "run.csv"
    code, _, err = _run(capsys, "export", "--remote", base_url, _id(capsys, base_url, "resnet-1"), "--keys",
                        "loss,val/loss", "--out", str(target))
    assert code == 0 and "wrote 200 steps x 2 metrics" in err
    rows = list(csv.reader(open(target)))
    assert rows[0] == ["step", "time", "loss", "val/loss"] and rows[1][2:] == ["1.0", "0.5"] and rows[2][3] == ""
    pyarrow = pytest.importorskip("pyarrow.parquet")
    code, _, _ = _run(capsys, "export", "--root", root, "alice/vision/resnet-1", "--format", "parquet", "--out",
                      str(tmp_path / "run.parquet"))
    table = pyarrow.read_table(tmp_path / "run.parquet")
    assert code == 0 and table.column_names == ["step", "time", "acc", "loss", "val/loss"] and table.num_rows == 200


def test_export_parquet_without_pyarrow_is_one_clear_line(logged, capsys, monkeypatch, tmp_path):
    """Without pyarrow, --format parquet fails with one line saying what to install, exit code 1."""
    _, root = logged
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    code, out, err = _run(capsys, "export", "--root", root, "alice/vision/mlp", "--format", "parquet", "--out",
                          str(tmp_path / "x.parquet"))
    assert code == 1 and err.count("\n") == 1 and "needs pyarrow" in err and not (tmp_path / "x.parquet").exists()


def test_rm_and_restore_and_errors(logged, capsys):
    """rm soft-deletes (hidden from ls, shown with --deleted), --restore brings it back; a bad filter or an unknown
    experiment is one line on stderr and exit code 1."""
    base_url, _ = logged
    experiment_id = _id(capsys, base_url, "vit-1")
    code, out, _ = _run(capsys, "rm", "--remote", base_url, experiment_id)
    assert code == 0 and "deleted alice/vision/sweeps/a/vit-1" in out
    assert "vit-1" not in _run(capsys, "ls", "--remote", base_url)[1]
    assert "COMPLETED (deleted)" in _run(capsys, "ls", "--remote", base_url, "--deleted")[1]
    assert _run(capsys, "rm", "--remote", base_url, "--restore", experiment_id)[0] == 0
    assert "vit-1" in _run(capsys, "ls", "--remote", base_url)[1]
    code, out, err = _run(capsys, "ls", "--remote", base_url, "--filter", "params.lr <")
    assert code == 1 and out == "" and err == ("ml-dash ls: filter: expected a value: a number, a 'string', true or "
                                               "false at position 11\n")
    code, _, err = _run(capsys, "show", "--remote", base_url, "f" * 32)
    assert code == 1 and err.startswith("ml-dash show: no experiment") and err.count("\n") == 1


def _id(capsys, base_url, prefix):
    from ml_dash import Api

    return Api(remote=base_url).experiments(filter=f"prefix = '{prefix}'")[0].id
