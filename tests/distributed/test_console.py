"""Console capture (client/run/console.py), in child processes: pytest holds fds 1 and 2 itself."""
from __future__ import annotations

import json
import os

from ml_dash.format.layout import stream_path

from .conftest import child_env, run_child

SCRIPT = r"""
import os, subprocess, sys
from ml_dash import Experiment
root = sys.argv[1]
exp = Experiment(namespace="a", workspace="b", prefix="c", local_root=root)
with exp.run():
    print("from print")
    os.write(1, b"from os.write\n")
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    print("to stderr", file=sys.stderr)
    sys.stdout.write("no newline at the end")
print("after the run")
"""


def console_rows(root: str) -> list[dict]:
    path = stream_path(os.path.join(root, "a", "b", "c"), "console")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f]


def lines_of(rows: list[dict], stream: str | None = None) -> list[str]:
    return [line for row in rows if stream in (None, row["stream"]) for line in row["text"].splitlines()]


def test_fd_level_output_is_captured_and_still_reaches_the_terminal(tmp_path):
    root = str(tmp_path / "root")
    done = run_child(SCRIPT, root)
    assert done.returncode == 0, done.stderr
    rows = console_rows(root)
    assert lines_of(rows, "stdout") == ["from print", "from os.write", "from a child process", "no newline at the end"]
    assert lines_of(rows, "stderr") == ["to stderr"]
    assert "after the run" not in lines_of(rows)  # fds are back once the run ends
    # tee'd: the terminal (here the parent's pipes) still got every byte
    for text in ("from print", "from os.write", "from a child process", "after the run"):
        assert text in done.stdout
    assert "to stderr" in done.stderr


def test_capture_off_leaves_file_descriptors_untouched(tmp_path):
    code = r"""
import os, sys
from ml_dash import Experiment
def fds():
    return [os.fstat(fd) for fd in (1, 2)], sorted(os.listdir("/proc/self/fd"))
exp = Experiment(namespace="a", workspace="b", prefix="c", local_root=sys.argv[1], console=False)
before = fds()
with exp.run():
    inside = fds()
    print("hello")
after = fds()
same = lambda x, y: [(s.st_dev, s.st_ino) for s in x[0]] == [(s.st_dev, s.st_ino) for s in y[0]]
print("SAME", same(before, inside), same(before, after))
"""
    root = str(tmp_path / "root")
    done = run_child(code, root)
    assert done.returncode == 0, done.stderr
    assert "SAME True True" in done.stdout
    assert console_rows(root) == []
    # ML_DASH_CONSOLE=0 does the same as console=False
    done = run_child(code.replace(", console=False", ""), root, env=child_env(ML_DASH_CONSOLE="0"))
    assert "SAME True True" in done.stdout and console_rows(root) == []


def test_fds_are_restored_at_run_end(tmp_path):
    code = r"""
import os, sys
from ml_dash import Experiment
exp = Experiment(namespace="a", workspace="b", prefix="c", local_root=sys.argv[1])
before = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
with exp.run():
    inside = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
after = [(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in (1, 2)]
print("CHANGED", inside != before, "RESTORED", after == before)
"""
    done = run_child(code, str(tmp_path / "root"))
    assert "CHANGED True RESTORED True" in done.stdout, done.stderr


def test_traceback_that_ends_the_process_is_captured(tmp_path):
    code = r"""
import sys
from ml_dash import Experiment
exp = Experiment(namespace="a", workspace="b", prefix="c", local_root=sys.argv[1])
exp.run()
print("about to fail")
raise RuntimeError("boom in the training loop")
"""
    root = str(tmp_path / "root")
    done = run_child(code, root)
    assert done.returncode == 1
    assert "RuntimeError: boom in the training loop" in done.stderr  # the terminal still shows it
    stderr = lines_of(console_rows(root), "stderr")
    assert stderr[0] == "Traceback (most recent call last):"
    assert stderr[-1] == "RuntimeError: boom in the training loop"
    with open(os.path.join(root, "a", "b", "c", ".ml-logger.meta.json")) as f:
        meta = json.load(f)
    assert meta["status"] == "failed" and meta["error"] == "RuntimeError: boom in the training loop"


def test_a_run_that_logged_nothing_is_ended_failed_at_exit(tmp_path):
    """Regression: the exit hook was registered only by the writer's start, so a run that logged nothing before an
    uncaught exception stayed "running" in its meta file for good."""
    code = r"""
import sys
from ml_dash import Experiment
exp = Experiment(namespace="a", workspace="b", prefix="c", local_root=sys.argv[1], console=False)
exp.run()
raise RuntimeError("nothing logged")
"""
    root = str(tmp_path / "root")
    run_child(code, root)
    with open(os.path.join(root, "a", "b", "c", ".ml-logger.meta.json")) as f:
        assert json.load(f)["status"] == "failed"


def test_print_storm_stays_within_the_budget_with_a_marker(tmp_path):
    code = r"""
import sys
from ml_dash import Experiment
exp = Experiment(namespace="a", workspace="b", prefix="c", local_root=sys.argv[1])
with exp.run():
    for i in range(20000):
        print(f"line {i:06d} " + "x" * 40)
print("SHED", exp.local_path)
"""
    root = str(tmp_path / "root")
    done = run_child(code, root, env=child_env(ML_DASH_CONSOLE_BUDGET="100000"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") >= 20000  # the terminal got everything
    rows = console_rows(root)
    stored = sum(len(row["text"].encode()) for row in rows if row["stream"] == "stdout")
    assert stored <= 100_000
    markers = [line for line in lines_of(rows, "stderr") if line.startswith("[ml-dash:")]
    assert len(markers) == 2  # where it starts shedding, and the count at the run's end
    assert "not stored from here on" in markers[0]
    shed = int(markers[1].split()[1])
    assert shed + stored == 20000 * len("line 000000 " + "x" * 40 + "\n")
    with open(os.path.join(root, "a", "b", "c", ".ml-logger.meta.json")) as f:
        assert json.load(f)["console_shed_bytes"] == shed
