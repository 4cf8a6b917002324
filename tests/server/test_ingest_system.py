"""The "system" stream: sampler rows stored as metric series under the reserved ``system/`` prefix."""
from __future__ import annotations

import orjson

from ml_dash.format.limits import MAX_NAME_LENGTH

from .conftest import metric_batch, new_experiment, new_run, post_batch
from .http.test_graphql import gql


def system_lines(rows) -> bytes:
    return b"".join(orjson.dumps({"timestamp": 1000.0 + i, "step": None, "metrics": m}) + b"\n"
                    for i, m in enumerate(rows))


def system_batch(lines: bytes, start: int = 0, run_id=None, stream_id="c1:system") -> dict:
    return {"run_id": run_id, "stream": "system", "stream_id": stream_id, "start": start, "end": start + len(lines),
            "lines": lines}


async def test_system_rows_become_system_series_apart_from_the_users(client):
    """Rows of the system stream are series named system/<name>, keyed by time; GraphQL lists them apart."""
    experiment_id = await new_experiment(client)
    run_id = await new_run(client, experiment_id)
    await post_batch(client, experiment_id, metric_batch(0, 3, range(3), run_id=run_id))
    lines = system_lines([{"cpu_percent": 10.0 * i, "gpu.0.power_w": 100.0 + i} for i in range(4)])
    answer = await post_batch(client, experiment_id, system_batch(lines, run_id=run_id))
    assert answer.status == 200, await answer.text()
    assert (await answer.json()) == {"acked": len(lines), "stored": 4}
    api = f"/api/v1/experiments/{experiment_id}"
    cpu = await (await client.get(f"{api}/metrics/system/cpu_percent")).json()
    assert cpu["values"] == [0.0, 10.0, 20.0, 30.0]
    assert cpu["steps"] == [1_000_000, 1_001_000, 1_002_000, 1_003_000]  # stored with their time (ms) as the step
    streams = (await (await client.get(f"{api}/streams")).json())["streams"]
    assert streams == {"c1:metrics": 3, "c1:system": len(lines)}  # its own offset, under its own stream id
    query = """query($id: ID!) { experiment(id: $id) { metricNames systemMetricNames lastMetrics
               metric(name: "system/gpu.0.power_w") { count values } } }"""
    found = (await gql(client, query, {"id": experiment_id}))["data"]["experiment"]
    assert found["metricNames"] == ["loss"] and found["lastMetrics"] == {"loss": 1.0}
    assert found["systemMetricNames"] == ["system/cpu_percent", "system/gpu.0.power_w"]
    assert found["metric"] == {"count": 4, "values": [100.0, 101.0, 102.0, 103.0]}
    # A replay of the same bytes stores nothing again.
    again = await post_batch(client, experiment_id, system_batch(lines, run_id=run_id))
    assert (await again.json())["duplicate"] is True


async def test_a_bad_system_row_is_left_out_and_the_rest_stored(client):
    """A name too long once prefixed, or a text value, rejects that row only; the batch's bytes are acknowledged."""
    experiment_id = await new_experiment(client)
    too_long = "x" * (MAX_NAME_LENGTH - len("system/") + 1)
    lines = system_lines([{"cpu_percent": 1.0}, {too_long: 1.0}, {"memory_percent": "high"}, {"cpu_percent": 2.0}])
    answer = await post_batch(client, experiment_id, system_batch(lines))
    body = await answer.json()
    assert answer.status == 200 and body["acked"] == len(lines) and body["stored"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    cpu = await (await client.get(f"/api/v1/experiments/{experiment_id}/metrics/system/cpu_percent")).json()
    assert cpu["values"] == [1.0, 2.0]
