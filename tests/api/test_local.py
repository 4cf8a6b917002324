"""``Api`` on a local root only: runs still logging, and what a listing reads again."""
from __future__ import annotations

import os

from ml_dash import Api


def test_a_second_listing_sees_what_was_logged_since_and_a_replaced_file(make_exp, tmp_path):
    """Last metrics follow appends between two listings of one Api, and start over when the file is replaced."""
    exp = make_exp("live")
    exp.run()
    exp.metrics.log(step=0, loss=1.0)
    exp.flush()
    api = Api(local_root=str(tmp_path / ".ml-logger"))
    [record] = api.experiments()
    assert record.last_metrics == {"loss": 1.0} and record.status == "RUNNING"
    exp.metrics.log(step=1, loss=0.5, acc=0.9)
    exp.flush()
    assert api.experiments()[0].last_metrics == {"acc": 0.9, "loss": 0.5}
    exp.complete()
    path = os.path.join(exp.local_path, "metrics.jsonl")
    with open(path, "w") as f:
        f.write('{"step": 0, "metrics": {"other": 3}}\n')
    assert api.experiments()[0].last_metrics == {"other": 3}
    assert api.experiments(filter="status = 'completed' and metrics.other = 3").total == 1
