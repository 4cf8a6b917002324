"""Several server hosts on one database: two single-worker servers, each with its own data directory, sharing one
PostgreSQL and one S3 bucket (moto), behind a round-robin load balancer (``RoundRobinProxy``), so consecutive requests
of a client, the batches of one stream in flight included, land on alternate hosts."""
from __future__ import annotations

import urllib.request

from .fault_proxy import FaultProxy
from .test_upload import assert_mirrored, log_run


def test_two_hosts_behind_a_balancer_with_faults_store_everything_once(make_exp, server_hosts, remote_env):
    """A run uploads through faults (500/429/503, connections cut before and after the server applied a batch) to
    two hosts in turn, four batches of a stream in flight: every point, log line, parameter and file is stored once,
    each host sees the same data, and batches sent ahead of their predecessor on the other host wait for it (across
    processes) instead of being refused: at most a couple of 409s (none in practice), and each batch range is sent a
    bounded number of times (retries come from the injected faults, not from ordering)."""
    urls, balancer = server_hosts
    remote_env(UPLOAD_BATCH_EVENTS=500, RETRY_BASE=0.001, RETRY_CAP=0.005)
    with FaultProxy(balancer.url, fault_rate=0.2, retry_after="0.01") as faults:
        exp = make_exp("two-hosts", remote=faults.url)
        with exp.run():
            log_run(exp, 30_000)
            exp.files.save(b"w" * 100_000, "weights.bin")
    for url in urls:  # either host answers with all of it: one database, one bucket
        view = assert_mirrored(url, exp, list(range(30_000)))
        assert view["files"] == {"weights.bin": 100_000}
        assert view["runs"][0]["status"] == "COMPLETED"
    file_url = f"/api/v1/experiments/{exp.experiment_id}/files/weights.bin"
    for url in urls:
        with urllib.request.urlopen(url + file_url) as answer:
            assert answer.read() == b"w" * 100_000
    assert all(balancer.served[url] > 20 for url in urls)
    ahead = [b for b in faults.batches if b[1] == "metrics" and b[3]]
    assert len(ahead) >= 10  # the window was in use, its batches spread over both hosts
    assert set(faults.injected) >= {"cut_before", "cut_after"}
    conflicts = balancer.statuses["POST", "batches", 409]
    sent = [(stream, start) for _t, stream, start, _a, _o in faults.batches]
    distinct = len(set(sent))
    assert conflicts <= 2, (conflicts, balancer.statuses)
    # Each range goes once, plus a retry per fault that hit it and a resend after a refused window: a small excess.
    faulted = sum(1 for *_rest, outcome in faults.batches if outcome != "ok")
    assert len(sent) - distinct <= faulted + 4 * (conflicts + 1), (len(sent), distinct, faulted, conflicts)
    print(f"\nbatches: {distinct} ranges, {len(sent)} requests, {faulted} faulted, {conflicts} 409s; "
          f"per host {dict(balancer.served)}")
