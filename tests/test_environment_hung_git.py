"""A hung git (a network filesystem, a credential prompt): the run's end does not wait for it, and its processes are
killed at the capture's timeout or at the program's exit, never left behind."""
import os
import select
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


def _hangs_with_a_helper(tmp_path, ready=None):
    """A git whose first command starts a helper process, writes its pid to ``pid`` (and a line to the FIFO
    ``ready``, which blocks until the test reads it) and waits on it forever; later commands fail at once."""
    pid = tmp_path / "pid"
    script = [f'[ -e "{pid}" ] && exit 1', "sleep 1000 &", f'echo $! > "{pid}.tmp" && mv "{pid}.tmp" "{pid}"']
    if ready is not None:
        script.append(f'echo > "{ready}"')
    return _fake_git(tmp_path, "\n".join([*script, "wait", ""])), pid


def _fifo(tmp_path):
    path = tmp_path / "ready"
    os.mkfifo(path)
    return path


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
    """complete() does not wait for a hung git (it used to wait up to 2 s, here up to STOP_TIMEOUT): git is killed,
    the environment is recorded without it, saying why, and the rest of it is there."""
    import ml_dash.client.experiment as experiment
    from ml_dash.client.run import environment

    ready = _fifo(tmp_path)
    bin_dir, pid_file = _hangs_with_a_helper(tmp_path, ready)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(experiment, "STOP_TIMEOUT", 300.0)  # so a run end that waits for git shows
    monkeypatch.setattr(environment, "GIT_TIMEOUT", 600.0)
    exp = make_exp(local_root=str(tmp_path / "logs"))
    exp.run()
    capture = exp._capture
    ready.read_text()  # git hangs now
    ended = threading.Thread(target=exp.complete)
    ended.start()
    try:
        ended.join(30)
        assert not ended.is_alive(), "complete() waited for git"
        assert capture.wait(0) and _ends_within(int(pid_file.read_text()), 30)
    finally:
        _cleanup(pid_file)
        ended.join()
    with open(os.path.join(exp.local_path, META_FILE), "rb") as f:
        written = orjson.loads(f.read())
    env = written["environment"]
    assert written["status"] == "completed" and "git" not in env and env["packages"] and env["cwd"] == str(repo)
    assert env["git_skipped"] == "git did not answer before the run ended" and exp.environment == env


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
    ready = _fifo(tmp_path)
    bin_dir, pid_file = _hangs_with_a_helper(tmp_path, ready)
    code = ("import ml_dash\nimport ml_dash.client.run.environment as environment\n"
            "environment.GIT_TIMEOUT = 600\n"
            "exp = ml_dash.Experiment(namespace='a', workspace='b', prefix='c')\nexp.run()\n"
            f"open({str(ready)!r}).read()  # git hangs now\n"
            "exp.complete()\nprint('ended')\n")
    try:
        done = run_python(code, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
        assert done.returncode == 0 and "ended" in done.stdout, done.stderr
        assert _ends_within(int(pid_file.read_text()), 30)
    finally:
        _cleanup(pid_file)
