"""The run's environment: captured at run() on a helper thread, stored in the meta file, git and the code diff."""
import importlib.metadata
import os
import subprocess
import sys

import orjson
import pytest

from ml_dash.client.run.environment import public_remote
from ml_dash.format.layout import META_FILE


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A real git repository with one commit and an https remote carrying a token; the test runs inside it."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "T")
    git(path, "remote", "add", "origin", "https://alice:s3cret-token@example.com/team/model.git")
    (path / "train.py").write_text("lr = 0.1\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "first")
    monkeypatch.chdir(path)
    return path


def meta(exp):
    with open(os.path.join(exp.local_path, META_FILE), "rb") as f:
        return orjson.loads(f.read())


def captured(exp):
    """The environment once the helper is done (complete() gives it a bounded moment; this waits for it)."""
    assert exp._capture is None or exp._capture.wait(60)
    return meta(exp)["environment"]


def test_git_state_and_the_diff_of_a_dirty_tree(make_exp, repo):
    """commit, branch, remote without its token, dirty; with save_code the diff is files/code/diff.patch."""
    (repo / "train.py").write_text("lr = 0.01\n")
    exp = make_exp(save_code=True, local_root=str(repo.parent / "logs"))
    exp.run()
    env = captured(exp)
    exp.complete()
    assert env["git"] == {"root": str(repo), "commit": git(repo, "rev-parse", "HEAD"), "branch": "main",
                          "remote": "https://example.com/team/model.git", "dirty": True,
                          "diff": "files/code/diff.patch"}
    patch = exp.files("code").load("diff.patch")
    assert b"-lr = 0.1" in patch and b"+lr = 0.01" in patch
    assert meta(exp)["environment"] == env and meta(exp)["status"] == "completed"  # the end kept it
    assert "s3cret" not in open(os.path.join(exp.local_path, META_FILE)).read()


def test_clean_tree_and_no_save_code_leave_no_diff(make_exp, repo):
    """A clean tree is not dirty and has no diff file even with save_code; a dirty one without save_code has none."""
    exp = make_exp("clean", save_code=True, local_root=str(repo.parent / "logs"))
    with exp.run():
        env = captured(exp)
    assert env["git"]["dirty"] is False and "diff" not in env["git"]
    (repo / "train.py").write_text("lr = 0.5\n")
    exp = make_exp("dirty", local_root=str(repo.parent / "logs"))
    with exp.run():
        env = captured(exp)
    assert env["git"]["dirty"] is True and "diff" not in env["git"]
    assert not os.path.exists(os.path.join(exp.local_path, "files", "code"))


def test_interpreter_host_command_and_packages(make_exp, tmp_path, monkeypatch):
    """Command line, working directory, Python, OS, host, user and installed packages with their versions."""
    monkeypatch.chdir(tmp_path)
    exp = make_exp()
    with exp.run():
        env = captured(exp)
    assert env["command"] == sys.argv and env["cwd"] == str(tmp_path)
    assert env["python"]["executable"] == sys.executable
    assert env["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    assert env["os"]["system"] == os.uname().sysname and env["hostname"] == os.uname().nodename
    assert env["pid"] == os.getpid() and env["captured_at"] <= meta(exp)["completed_at"]
    assert env["packages"]["orjson"] == importlib.metadata.version("orjson")
    assert env["packages"]["pytest"] == importlib.metadata.version("pytest")
    assert "git" not in env  # tmp_path is no repository


def test_without_git_on_path_git_is_simply_absent(make_exp, tmp_path, monkeypatch, repo):
    """Inside a repository but with no git executable on PATH: no "git" key, everything else captured."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    exp = make_exp(local_root=str(tmp_path / "logs"))
    with exp.run():
        env = captured(exp)
    assert "git" not in env and env["packages"] and env["cwd"] == str(repo)


def test_run_returns_before_the_slow_part(make_exp, tmp_path, monkeypatch, repo):
    """A git that blocks until released: run() has returned (and logging works) while the capture still waits."""
    bin_dir, release = tmp_path / "bin", tmp_path / "release"
    bin_dir.mkdir()
    real_git = subprocess.run(["sh", "-c", "command -v git"], capture_output=True, text=True).stdout.strip()
    fake = bin_dir / "git"
    fake.write_text(f'#!/bin/sh\nwhile [ ! -e "{release}" ]; do sleep 0.01; done\nexec "{real_git}" "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    exp = make_exp(local_root=str(tmp_path / "logs"))
    exp.run()
    exp.metrics.log(step=0, loss=1.0)
    assert exp.flush(30)
    assert not exp._capture.done.is_set() and exp.environment is None and "environment" not in meta(exp)
    release.touch()
    env = captured(exp)
    exp.complete()
    assert env["git"]["commit"] == git(repo, "rev-parse", "HEAD") and exp.environment == env


def test_capture_turned_off_and_bad_arguments(make_exp, tmp_path, monkeypatch):
    """capture_environment=False or ML_DASH_CAPTURE_ENVIRONMENT=0 record nothing; non-bool arguments are refused."""
    monkeypatch.chdir(tmp_path)
    exp = make_exp("off", capture_environment=False, save_code=True)
    with exp.run():
        assert exp._capture is None
    assert "environment" not in meta(exp)
    monkeypatch.setenv("ML_DASH_CAPTURE_ENVIRONMENT", "off")
    exp = make_exp("env-off")
    with exp.run():
        assert exp._capture is None
    with pytest.raises(TypeError, match="save_code"):
        make_exp(save_code="yes")
    with pytest.raises(TypeError, match="capture_environment"):
        make_exp(capture_environment=1)


def test_a_new_run_replaces_the_environment(make_exp, tmp_path, monkeypatch):
    """Each run records its own capture: a second run's environment replaces the first's."""
    monkeypatch.chdir(tmp_path)
    exp = make_exp()
    with exp.run():
        first = captured(exp)
    monkeypatch.setattr(sys, "argv", ["train.py", "--second"])
    with exp.run():
        second = captured(exp)
    assert second["command"] == ["train.py", "--second"] and second["captured_at"] > first["captured_at"]
    assert meta(exp)["environment"] == second


def test_torch_versions_only_when_torch_is_already_imported(run_python):
    """A program that imported torch gets its version and CUDA build; one that did not never imports it."""
    code = ("import sys, ml_dash\n{imp}exp = ml_dash.Experiment(namespace='a', workspace='b', prefix='c')\n"
            "exp.run(); exp._capture.wait(60); env = exp.environment; exp.complete()\n"
            "print(env.get('torch'), 'torch' in sys.modules)\n")
    without = run_python(code.format(imp=""))
    assert without.returncode == 0, without.stderr
    assert without.stdout.split() == ["None", "False"]
    with_torch = run_python(code.format(imp="import torch\n"))
    assert with_torch.returncode == 0, with_torch.stderr
    import torch

    assert f"'version': '{torch.__version__}'" in with_torch.stdout and "'cuda':" in with_torch.stdout


@pytest.mark.parametrize("url, public", [
    ("https://alice:token@github.com/a/b.git", "https://github.com/a/b.git"),
    ("https://ghp_abc@github.com/a/b.git", "https://github.com/a/b.git"),
    ("ssh://git@host:2222/a/b.git", "ssh://host:2222/a/b.git"),
    ("git@github.com:a/b.git", "git@github.com:a/b.git"),
    ("https://github.com/a/b.git", "https://github.com/a/b.git"),
])
def test_remote_urls_lose_their_credentials(url, public):
    """A remote URL is recorded without the user or token it may carry; scp-like URLs are kept as they are."""
    assert public_remote(url) == public
