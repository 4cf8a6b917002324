"""The run's environment, captured once when a run starts: git, command line, interpreter, host, packages.

``run()`` only snapshots what can change later (``sys.argv``, the working directory) and starts a helper thread;
git (a few subprocesses) and the package listing (reading every installed distribution's metadata, tens to hundreds
of milliseconds) happen there, and the result reaches the meta file when it is done. A missing ``git`` or a working
directory outside a repository simply leaves ``git`` out. Environment variables are never recorded (they hold
secrets), and a remote URL loses any user or token it carries.
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from typing import Any, Callable

import orjson

from ml_dash.format.limits import MAX_ENVIRONMENT_BYTES
from ml_dash.settings import CAPTURE_ENVIRONMENT, SAVE_CODE
from ml_dash.client.run.starter import start_soon

logger = logging.getLogger("ml_dash")

GIT_TIMEOUT = 10.0  # seconds per git command (a hung network filesystem must not keep the helper forever)
MAX_DIFF_BYTES = 10 << 20  # a larger diff is not saved (the environment says so): it is not "code", it is data


_live: set[Any] = set()  # git children running now (their process groups), killed if the program exits first
_live_lock = threading.Lock()


def _kill(child: Any) -> None:
    """Kill ``child``'s whole process group: git's own helpers (a credential prompt, ssh, a hook) go with it."""
    import signal

    try:
        os.killpg(child.pid, signal.SIGKILL)
    except OSError:  # already gone
        pass


class Git:
    """The git commands of one capture, each in its own session so that killing it kills everything it started:
    at ``GIT_TIMEOUT``, when the run ends first (``stop``), or at the program's exit. ``skipped`` says why git's
    answers are incomplete, if they are."""

    def __init__(self) -> None:
        self.skipped: str | None = None
        self._stopped = False
        self._child: Any = None
        self._lock = threading.Lock()

    def __call__(self, args: list[str], cwd: str) -> str | None:
        """One git command's stdout, or None if it failed (not a repository, no commits, no such remote) or was
        killed."""
        import subprocess

        env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", GIT_TERMINAL_PROMPT="0", LC_ALL="C")  # never takes index.lock
        with self._lock:
            if self._stopped:
                return None
            try:
                child = subprocess.Popen(["git", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
            except (OSError, subprocess.SubprocessError):
                return None
            self._child = child
        with _live_lock:
            _live.add(child)
        try:
            out, _ = child.communicate(timeout=GIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.skipped = self.skipped or f"git did not answer within {GIT_TIMEOUT:g} s"
            _kill(child)
            child.communicate()  # reaps it; its pipe is closed now that the whole group is gone
            return None
        finally:
            with self._lock:
                self._child = None
            with _live_lock:
                _live.discard(child)
        return out.decode("utf-8", "replace") if child.returncode == 0 else None

    def stop(self) -> None:
        """The run ended: kill the command running now, start no other."""
        with self._lock:
            self._stopped, child = True, self._child
            if child is not None:
                self.skipped = self.skipped or "git did not answer before the run ended"
                _kill(child)


def _git(args: list[str], cwd: str) -> str | None:
    """One git command's stdout, run on its own (see ``Git``)."""
    return Git()(args, cwd)


@atexit.register
def _kill_live() -> None:
    """The program ends while a capture still waits on git: its helper thread dies with the interpreter, so kill
    the git it started rather than leave it behind."""
    with _live_lock:
        children = list(_live)
    for child in children:
        _kill(child)


def public_remote(url: str) -> str:
    """``url`` without the user and password (a token) an https remote may carry; scp-like URLs as they are."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme and parts.netloc and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def git_info(cwd: str, with_diff: bool, run_git: Callable[[list[str], str], str | None] = _git
             ) -> tuple[dict[str, Any] | None, bytes | None]:
    """(commit, branch, remote, dirty, root) of the repository holding ``cwd`` and, with ``with_diff``, the output of
    ``git diff HEAD``; (None, None) without git or outside a repository. ``run_git`` runs one command."""
    import shutil

    if shutil.which("git") is None:
        return None, None
    root = run_git(["rev-parse", "--show-toplevel"], cwd)
    if root is None:
        return None, None
    info: dict[str, Any] = {"root": root.strip()}
    commit = run_git(["rev-parse", "HEAD"], cwd)
    info["commit"] = commit.strip() if commit else None  # None in a repository without commits
    branch = run_git(["symbolic-ref", "--short", "-q", "HEAD"], cwd)
    info["branch"] = branch.strip() if branch else None  # None on a detached HEAD
    remote = run_git(["config", "--get", "remote.origin.url"], cwd)
    info["remote"] = public_remote(remote.strip()) if remote else None
    status = run_git(["status", "--porcelain", "--untracked-files=no"], cwd)
    info["dirty"] = bool(status.strip()) if status is not None else None
    diff = None
    if with_diff and info["dirty"] and commit:
        text = run_git(["diff", "HEAD"], cwd)
        if text is not None:
            diff = text.encode("utf-8")
            if len(diff) > MAX_DIFF_BYTES:
                info["diff_skipped"] = f"{len(diff)} bytes, over the {MAX_DIFF_BYTES}-byte limit"
                diff = None
    return info, diff


def installed_packages() -> dict[str, str]:
    """Distribution name → version, as ``importlib.metadata`` finds them (the first on ``sys.path`` wins)."""
    import importlib.metadata

    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except Exception:  # noqa: BLE001  (a broken .dist-info must not cost the rest)
            continue
        if name and name not in found:
            found[name] = version
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))


def _user() -> str | None:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (a container uid without a passwd entry, no USER variable)
        return None


def _torch() -> dict[str, Any] | None:
    torch = sys.modules.get("torch")  # only when the program already imported it: importing torch costs seconds
    if torch is None:
        return None
    version = getattr(torch, "version", None)
    return {"version": getattr(torch, "__version__", None), "cuda": getattr(version, "cuda", None)}


def capture(argv: list[str], cwd: str, with_diff: bool,
            git: Git | None = None) -> tuple[dict[str, Any], bytes | None]:
    """The environment dict (meta ``"environment"``) and the diff to save, if any. Slow: run it off the caller."""
    import platform  # these imports cost `import ml_dash` ~30 ms at module level; here they run on the helper
    import socket

    env: dict[str, Any] = {
        "captured_at": time.time(),
        "command": argv,
        "cwd": cwd,
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "os": {"platform": platform.platform(), "system": platform.system(), "release": platform.release(),
               "machine": platform.machine()},
        "hostname": socket.gethostname(),
        "user": _user(),
        "pid": os.getpid(),
    }
    git = Git() if git is None else git
    found, diff = git_info(cwd, with_diff, git)
    if git.skipped is not None:  # answers cut short would read as facts ("no commit"): none are recorded
        found, diff = None, None
        env["git_skipped"] = git.skipped
    if found is not None:
        env["git"] = found
    torch = _torch()
    if torch is not None:
        env["torch"] = torch
    env["packages"] = installed_packages()
    if len(orjson.dumps(env)) > MAX_ENVIRONMENT_BYTES:  # the server refuses more; the packages are what grows
        env["packages"] = {}
        env["packages_omitted"] = f"the environment was over {MAX_ENVIRONMENT_BYTES:,} bytes with them"
    return env, diff


class EnvironmentCapture:
    """One run's capture on a helper thread; ``on_done(environment, diff)`` runs there when it is complete."""

    def __init__(self, with_diff: bool, on_done: Callable[[dict[str, Any], bytes | None], None]) -> None:
        # Snapshotted on the caller: the program may chdir or edit sys.argv once the run is going.
        try:
            cwd = os.getcwd()
        except OSError:  # the working directory was deleted
            cwd = ""
        self._args = (list(sys.argv), cwd, with_diff)
        self._on_done = on_done
        self.git = Git()
        self.done = threading.Event()
        start_soon(threading.Thread(target=self._main, name="ml-dash-environment", daemon=True).start)

    def _main(self) -> None:
        try:
            environment, diff = capture(*self._args, git=self.git)
            self._on_done(environment, diff)
        except Exception:  # noqa: BLE001  (the environment is a nicety; the run goes on without it)
            logger.warning("ml-dash: could not capture the run's environment", exc_info=True)
        finally:
            self.done.set()

    def wait(self, timeout: float) -> bool:
        return self.done.wait(timeout)

    def stop_git(self) -> None:
        """The run ends: a git still running is killed (the capture then goes on without it), so a hung git never
        holds up the run's end."""
        self.git.stop()


def environment_settings(capture_environment: bool | None, save_code: bool | None) -> tuple[bool, bool]:
    """(capture, save the diff): the arguments, else ML_DASH_CAPTURE_ENVIRONMENT and ML_DASH_SAVE_CODE."""
    for name, value in (("capture_environment", capture_environment), ("save_code", save_code)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"Experiment: {name} must be True or False, got {type(value).__name__} {value!r}")
    capture_on = CAPTURE_ENVIRONMENT.get(capture_environment)
    return capture_on, capture_on and SAVE_CODE.get(save_code)
