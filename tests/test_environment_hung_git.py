"""A hung git (a network filesystem, a credential prompt): the run's end does not wait for it, and its processes are
killed at the capture's timeout or at the program's exit, never left behind."""
import os
import select
import shutil
import threading

import orjson

from ml_dash.format.layout import META_FILE
from tests.test_environment import git, repo  # noqa: F401  (the fixture)


def _fake_git(tmp_path, body):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "git"
    fake.write_text("#!/bin/sh\n" + body)
    fake.chmod(0o755)
    return bin_dir


def _hangs_with_a_helper(tmp_path):
    """A git that starts a helper process, writes its pid to ``pid`` and waits on it forever."""
    pid = tmp_path / "pid"
    return _fake_git(tmp_path, f'sleep 1000 &\necho $! > "{pid}.tmp" && mv "{pid}.tmp" "{pid}"\nwait\n'), pid


def _ends_within(pid: int, seconds: float) -> bool:
    """Whether process ``pid`` (not our child) has ended, or ends within ``seconds``: waits on its pidfd."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


def _cleanup(pid_file):
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), 9)
        except ProcessLookupError:
            pass


def test_the_run_end_does_not_wait_for_git(make_exp, tmp_path, monkeypatch, repo):  # noqa: F811
    """complete() returns while git still hangs (it used to wait up to 2 s, here up to STOP_TIMEOUT); the capture
    still records into the meta file once git answers."""
    import ml_dash.client.experiment as experiment
    from ml_dash.client.run import environment

    release = tmp_path / "release"
    real_git = shutil.which("git")
    bin_dir = _fake_git(tmp_path, f'while [ ! -e "{release}" ]; do sleep 0.01; done\nexec "{real_git}" "$@"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(experiment, "STOP_TIMEOUT", 300.0)  # so a run end that waits for the capture shows
    monkeypatch.setattr(environment, "GIT_TIMEOUT", 600.0)
    exp = make_exp(local_root=str(tmp_path / "logs"))
    exp.run()
    capture = exp._capture
    ended = threading.Thread(target=exp.complete)
    ended.start()
    try:
        ended.join(30)
        assert not ended.is_alive(), "complete() waited for the environment capture"
        assert not capture.done.is_set()
    finally:
        release.touch()
        ended.join()
    assert capture.wait(60)
    with open(os.path.join(exp.local_path, META_FILE), "rb") as f:
        written = orjson.loads(f.read())
    assert written["status"] == "completed" and written["environment"]["git"]["commit"] == git(repo, "rev-parse",
                                                                                              "HEAD")


def test_a_git_past_its_timeout_is_killed_with_what_it_started(tmp_path, monkeypatch):
    """GIT_TIMEOUT kills git's whole process group: the helper it started does not outlive it."""
    from ml_dash.client.run import environment

    bin_dir, pid_file = _hangs_with_a_helper(tmp_path)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(environment, "GIT_TIMEOUT", 3.0)  # the helper is started and written down long before
    try:
        assert environment._git(["status"], str(tmp_path)) is None
        assert pid_file.exists() and _ends_within(int(pid_file.read_text()), 30)
    finally:
        _cleanup(pid_file)


def test_a_program_ending_while_git_hangs_leaves_no_git_behind(tmp_path, run_python):
    """The program completes its run and exits while git still hangs (long before GIT_TIMEOUT): git and its helper
    are killed at exit, not left running."""
    bin_dir, pid_file = _hangs_with_a_helper(tmp_path)
    code = ("import os, time, ml_dash\nimport ml_dash.client.run.environment as environment\n"
            "environment.GIT_TIMEOUT = 600\n"
            "exp = ml_dash.Experiment(namespace='a', workspace='b', prefix='c')\nexp.run()\n"
            f"while not os.path.exists({str(pid_file)!r}): time.sleep(0.01)  # git is hanging now\n"
            "exp.complete()\nprint('ended')\n")
    try:
        done = run_python(code, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
        assert done.returncode == 0 and "ended" in done.stdout, done.stderr
        assert _ends_within(int(pid_file.read_text()), 30)
    finally:
        _cleanup(pid_file)
