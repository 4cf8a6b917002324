"""ml-dash with ``remote=`` to a local ml-dash server (``ml_dash.server.testing.running_server``), started inside the
worker: its CPU and RSS count in the worker's process tree."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from .base import KEYS, complete_steps
from .mldash_local import MlDashLocal


def _takes_arg(fn) -> bool:
    import inspect

    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return False
    return bool(params)


def _server_steps(url: str) -> int:
    """Steps with all three metrics that the ml-dash server holds for bench/compare/run (its REST API)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    def get(path):
        with urllib.request.urlopen(url + "/api/v1" + path, timeout=30) as r:
            return json.loads(r.read())

    exps = [e for e in get("/experiments?namespace=bench")["experiments"] if e.get("prefix") == "run"]
    if len(exps) != 1:
        raise RuntimeError(f"{len(exps)} experiments on the server")
    eid = urllib.parse.quote(str(exps[0].get("id") or exps[0].get("experiment_id")))
    steps: dict[int, set] = {}
    for k in KEYS:
        try:
            series = get(f"/experiments/{eid}/metrics/{k}")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                continue
            raise
        for st in series["steps"]:
            steps.setdefault(st, set()).add(k)
    return complete_steps(steps)


def _remote_ok() -> tuple[bool, str]:
    """Is the project's test server there and does it start? Checked in a fresh process."""
    code = ("import os,sys,tempfile,inspect\n"
            "from ml_dash.server.testing import running_server\n"
            "from ml_dash import Experiment\n"
            "d=tempfile.mkdtemp()\n"
            "params=[p for p in inspect.signature(running_server).parameters.values() if p.default is p.empty "
            "and p.kind in (p.POSITIONAL_ONLY,p.POSITIONAL_OR_KEYWORD)]\n"
            "cm=running_server(os.path.join(d,'srv')) if params else running_server()\n"
            "s=cm.__enter__(); url=s if isinstance(s,str) else getattr(s,'url',s)\n"
            "try:\n"
            " e=Experiment(namespace='probe',workspace='probe',prefix='probe',local_root=os.path.join(d,'l'),remote=url)\n"
            " e.run(); e.metrics.log(step=0,x=1.0); e.complete()\n"
            "finally:\n"
            " cm.__exit__(None,None,None)\n")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "ml_dash.server.testing.running_server did not start within 60 s"
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"a probe run with `remote=` to ml_dash.server.testing.running_server failed: {last}"
    return True, ""


class MlDashRemote(MlDashLocal):
    name = "mldash_remote"
    label = "ml-dash (remote, local server)"
    module = "ml_dash.server.testing"
    call = "exp.metrics.log(step=i, **d), remote=URL"

    def available(self):
        ok, why = super().available()
        if ok:
            ok, why = _remote_ok()
        return ok, why

    def prepare(self, out, meta):
        from ml_dash.server.testing import running_server

        self._server = (running_server(os.path.join(out, "server-data")) if _takes_arg(running_server)
                        else running_server())
        srv = self._server.__enter__()
        meta["remote_url"] = srv if isinstance(srv, str) else getattr(srv, "url", None) or str(srv)

    def experiment_kw(self, meta):
        return {"remote": meta["remote_url"]}

    def cleanup(self, meta):
        try:
            meta["server_steps"] = _server_steps(meta["remote_url"])
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            meta["server_steps"] = f"unchecked: {type(e).__name__}: {e}"
        self._server.__exit__(None, None, None)

    def readback(self, out, meta):
        local = self.local_steps(out)
        srv = meta.get("server_steps")
        if not isinstance(srv, int):
            return {"stored": None, "how": f"local {local}; server {srv}"}
        return {"stored": min(local, srv), "how": f"exp.metrics.read() (local: {local}) and the server's "
                f"REST API (server: {srv})"}
