"""Aim: ``run.track(d, step=i)`` into a repo in the run's directory."""
from __future__ import annotations

from .base import KEYS, Tracker, complete_steps


class AimRun(Tracker):
    name = "aim"
    label = "Aim"
    module = "aim"
    dist = "aim"
    call = "run.track(d, step=i)"

    def setup(self, out, meta):
        from aim import Run

        run = Run(repo=out, experiment="bench")
        meta["run_hash"] = run.hash
        track = run.track
        return (lambda i, d: track(d, step=i)), run.close

    def readback(self, out, meta):
        from aim import Repo, Run
        from aim.sdk.index_manager import RepoIndexManager
        from aim.storage.context import Context

        # Aim 3.29 writes a run into its own chunk; the repo index is built by the indexing manager that `aim up`
        # runs. Index the run the same way, then read it.
        repo = Repo(out)
        RepoIndexManager(repo).index(meta["run_hash"])
        run = Run(run_hash=meta["run_hash"], repo=repo, read_only=True)
        steps: dict[int, set] = {}
        for k in KEYS:
            seq = run.get_metric(k, Context({}))
            if seq is None:
                continue
            st, _cols = seq.data.numpy()
            for x in st.tolist():
                steps.setdefault(int(x), set()).add(k)
        return {"stored": complete_steps(steps),
                "how": "RepoIndexManager.index(run) (as `aim up` does), then Run.get_metric(k).data"}
