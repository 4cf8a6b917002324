"""``ml-dash alerts`` against a real server: add, list, disable, recent, rm; secrets come from the environment."""
from __future__ import annotations

from ml_dash.cli import main
from ml_dash.server.testing import running_server


def test_alerts_cli_round_trip(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "from-the-env")
    with running_server(tmp_path / "data") as base:
        common = ["alerts", "--remote", base]
        assert main([*common, "add", "--namespace", "alice", "--workspace", "vision", "--kind", "threshold",
                     "--param", "metric=loss", "--param", "op=>", "--param", "value=10",
                     "--webhook", "https://hooks.example.com/T/B/SECRETPATH", "--format", "slack",
                     "--secret-env", "HOOK_SECRET", "--name", "loss high"]) == 0
        rule_id = capsys.readouterr().out.strip()
        assert main([*common, "disable", rule_id]) == 0
        assert main([*common, "rules", "--namespace", "alice"]) == 0
        listed = capsys.readouterr().out
        assert rule_id in listed and "off" in listed and "loss high" in listed and '"value":10.0' in listed
        assert "SECRETPATH" not in listed and "from-the-env" not in listed
        assert main([*common, "recent"]) == 0
        assert capsys.readouterr().out.strip() == "no alerts"
        assert main([*common, "add", "--namespace", "alice", "--kind", "stall", "--param", "minutes=5",
                     "--webhook", "ftp://x/y"]) == 1
        assert "http:// or https://" in capsys.readouterr().err
        assert main([*common, "rm", rule_id]) == 0
        assert main([*common, "rules"]) == 0
        assert capsys.readouterr().out.strip() == "no rules"
