"""Smoke test of benchmarks/compare_trackers.py: tiny N, ml-dash and the two baselines only (the peers are not
installed here; the script must not need them). No timing is asserted: only that it runs, reads every step back
from ml-dash's store, and sees no tensor-to-host call on the caller thread."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "benchmarks", "compare_trackers.py")


def test_compare_trackers_smoke(tmp_path):
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_DASH_", "ML_LOGGER_"))}
    p = subprocess.run(
        [sys.executable, SCRIPT, "--steps", "200", "--reps", "1", "--sync-steps", "20", "--only", "mldash,deque,orjson",
         "--results-dir", str(results), "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "| ml-dash (local) |" in p.stdout
    data = json.loads((results / "compare_trackers.json").read_text())
    assert not data["errors"], data["errors"]
    rows = {r["name"]: r for r in data["rows"]}
    assert set(rows) == {"mldash", "deque", "orjson"}
    ml = rows["mldash"]
    assert ml["check"] == "all" and ml["stored_total"] == ml["logged_total"] == 200
    assert rows["orjson"]["check"] == "all"
    assert ml["sync_raw"]["caller_syncs"] == {}  # the writer thread pulls tensor values, never the caller
    assert sum(ml["sync_raw"]["other_thread_syncs"].values()) == 60  # 3 tensors x 20 steps, converted off-thread
    assert (results / "compare_trackers.md").read_text().startswith("# Tracker comparison")
