"""The alert engine of one server process: rules evaluated as batches land, a watchdog tick, webhook deliveries.

Nothing here makes ingest wait. ``observe_batch`` runs in the batch's request after it is stored: a dict lookup when
no rule covers the namespace, else numpy over the batch's own points (``evaluate``: bounded per batch). What it finds
goes on a bounded queue that a background task writes to the database (``open_alert``/``resolve_alert``: the
database dedupes across workers); a second task claims due deliveries from the database and sends them (each one by
exactly one worker), a third runs the watchdog tick (stalled runs) and reloads the rules. ``clock`` is injectable:
tests move time forward and call ``tick()`` instead of sleeping.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Callable
from urllib.parse import urlsplit

import aiohttp

from ml_dash.format.layout import SYSTEM_PREFIX
from ml_dash.format.limits import ALERT_CONTEXT_KEY, ALERT_TITLE_MAX
from ml_dash.format.retry import Backoff
from ml_dash.server.alerts.delivery import GuardedResolver, Outcome, request, send
from ml_dash.server.alerts.evaluate import METRIC_KINDS, SeriesState, batch_points, check, watches
from ml_dash.server.alerts.rules import WebhookAllowList
from ml_dash.server.series.batch import MetricBatch

log = logging.getLogger("ml_dash.server.alerts")

CLIENT_ALERT_KEY = ALERT_CONTEXT_KEY  # a log record's context key that makes it an exp.alert(...)
CLIENT_BATCH = 3  # more client alerts than this in one batch (a sync of an offline run) become one summary alert
QUEUE_LIMIT = 10_000  # outcomes waiting to be written; past it new ones are dropped (and logged), ingest never waits
MAX_SERIES_STATES = 1_000_000  # per-series evaluation states kept; past it the quiet ones are forgotten
STALL_RUNS_LIMIT = 10_000  # RUNNING runs one stall rule looks at per tick
CLAIM_LIMIT = 20  # deliveries claimed at once by one worker


def _path(experiment: dict[str, Any]) -> str:
    return "/".join(p for p in (experiment["namespace"], experiment["workspace"], experiment.get("directory"),
                                experiment["prefix"]) if p)


def _covers(rule: dict[str, Any], experiment: dict[str, Any]) -> bool:
    """A rule's scope holds the experiment (and so every run there, new ones included)."""
    if rule["experiment_id"] is not None:
        return rule["experiment_id"] == experiment["id"]
    if rule["workspace"] is not None and rule["workspace"] != experiment["workspace"]:
        return False
    directory = rule["directory"]
    return directory is None or experiment["directory"] == directory or \
        (experiment["directory"] or "").startswith(directory + "/")


def run_state(status: str, error: str | None) -> str:
    """A run's new status as a state rule names it: a failure by SIGTERM or by a crash told apart by its error."""
    if status == "FAILED" and error:
        if "SIGTERM" in error:
            return "SIGTERM"
        if "without complete() or fail()" in error:  # client/upload/crashed.py's verdict
            return "CRASHED"
    return status


class AlertEngine:
    def __init__(self, storage: Any, allow: WebhookAllowList, *, clock: Callable[[], float] = time.time,
                 refresh_s: float = 2.0, tick_s: float = 5.0, poll_s: float = 0.5, timeout_s: float = 10.0,
                 max_attempts: int = 5, backoff: Backoff | None = None, late_after_s: float = 300.0) -> None:
        self.storage, self.allow, self.clock = storage, allow, clock
        self.refresh_s, self.tick_s, self.poll_s, self.timeout_s = refresh_s, tick_s, poll_s, timeout_s
        self.max_attempts, self.backoff, self.late_after_s = max_attempts, backoff or Backoff(), late_after_s
        self.dropped = 0  # outcomes dropped because the queue was full
        self._by_namespace: dict[str, list[dict[str, Any]]] = {}
        self._matched: dict[str, list[dict[str, Any]]] = {}  # experiment id → the rules covering it
        self._state: dict[tuple, SeriesState] = {}
        self._beats: dict[str, tuple[float | None, float]] = {}  # run id → (data time, batch time), not yet saved
        self._queue: asyncio.Queue | None = None
        self._wake: asyncio.Event | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task] = []
        self._round: asyncio.Lock | None = None  # one delivery round at a time in this process

    # lifecycle
    async def start(self) -> None:
        self._queue, self._wake, self._round = asyncio.Queue(QUEUE_LIMIT), asyncio.Event(), asyncio.Lock()
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.allow)))
        await self.reload()
        self._tasks = [asyncio.create_task(loop()) for loop in (self._write_loop, self._deliver_loop, self._tick_loop)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self._save_beats()
        if self._session is not None:
            await self._session.close()

    async def reload(self) -> None:
        """Read the rules again (every ``refresh_s``, and at once after a change made through this process)."""
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for rule in await self.storage.alert_rules():
            if rule["enabled"]:
                by_namespace.setdefault(rule["namespace"], []).append(rule)
        self._by_namespace, self._matched = by_namespace, {}

    async def settle(self) -> None:
        """Wait until every outcome observed so far is in the database and every delivery due now has been tried
        (tests and benchmarks synchronise on this, never on sleeping)."""
        await self._queue.join()
        while await self.deliver_due():
            pass

    def rules_for(self, experiment: dict[str, Any]) -> list[dict[str, Any]]:
        found = self._matched.get(experiment["id"])
        if found is None:
            found = self._matched[experiment["id"]] = [
                r for r in self._by_namespace.get(experiment["namespace"], ()) if _covers(r, experiment)]
        return found

    # what ingest calls
    def observe_batch(self, experiment: dict[str, Any], run_id: str | None, stream: str, events: Any) -> None:
        """After a batch is stored (not a replay): evaluate the rules covering its experiment on its points."""
        now = self.clock()
        metrics = MetricBatch.of_events(events) if stream == "metrics" else None
        data = stream != "metrics" or any(not n.startswith(SYSTEM_PREFIX) for n in metrics.names)
        if run_id is not None:
            old = self._beats.get(run_id)
            self._beats[run_id] = (now if data else (old[0] if old else None), now)
        if experiment["namespace"] not in self._by_namespace:
            return
        decoded: dict[str, Any] = {}  # name → its points, decoded once for all the rules watching it
        for rule in self.rules_for(experiment):
            if metrics is not None and rule["kind"] in METRIC_KINDS:
                self._metric_rule(rule, experiment, run_id, metrics, now, decoded)
            elif stream == "logs" and rule["kind"] == "client":
                self._client_rule(rule, experiment, run_id, events, now)

    def observe_run(self, run: dict[str, Any], status: str, error: str | None) -> None:
        """After a run's status changed: state rules (the experiment is read off the request path)."""
        if run["namespace"] in self._by_namespace:
            self._put(("run", run, status, error, self.clock()))

    # evaluation
    def _metric_rule(self, rule: dict, experiment: dict, run_id: str | None, batch: MetricBatch, now: float,
                     decoded: dict[str, Any]) -> None:
        pattern = rule["params"]["metric"]
        for name in batch.names:
            if not watches(pattern, name):
                continue
            key = (rule["pk"], experiment["id"], name)
            state = self._state.get(key)
            if state is None:
                if len(self._state) >= MAX_SERIES_STATES:  # bounded memory: keep only the firing ones
                    self._state = {k: s for k, s in self._state.items() if s.firing}
                state = self._state[key] = SeriesState()
            points = decoded.get(name)
            if points is None:
                points = decoded[name] = batch_points(batch.chunks[name])
            verdict = check(rule["kind"], rule["params"], points, state)
            if verdict.first is not None and not state.firing and now >= state.quiet_until:
                state.firing = True
                self._put(("open", rule, experiment, run_id, name, rule["level"],
                           f"{_path(experiment)}: {name} {verdict.detail.partition(':')[0]} ({rule['name']})",
                           f"{name} {verdict.detail}", False, False, now))
            if state.firing and verdict.clear:
                state.firing, state.quiet_until = False, now + rule["cooldown"]
                self._put(("resolve", rule["pk"], experiment["id"], name, now))

    def _client_rule(self, rule: dict, experiment: dict, run_id: str | None, events: list, now: float) -> None:
        found = [e for e in events if isinstance(e.get("context"), dict) and CLIENT_ALERT_KEY in e["context"]]
        if not found:
            return
        late = [now - (e.get("timestamp") or now) > self.late_after_s for e in found]
        if len(found) <= CLIENT_BATCH:
            for event, was_late in zip(found, late):
                self._put(("open", rule, experiment, run_id, "client:" + uuid.uuid4().hex, event["level"],
                           f"{_path(experiment)}: {str(event['context'][CLIENT_ALERT_KEY])[:ALERT_TITLE_MAX]}",
                           event.get("message"), was_late, True, now))
            return
        # An offline run synced: one alert listing them, not a storm of old ones.
        lines = [f"[{e['level']}] {str(e['context'][CLIENT_ALERT_KEY])[:ALERT_TITLE_MAX]}" for e in found[:20]]
        if len(found) > 20:
            lines.append(f"… and {len(found) - 20} more")
        level = max((e["level"] for e in found), key=lambda lv: ("INFO", "WARNING", "ERROR", "CRITICAL").index(lv)
                    if lv in ("INFO", "WARNING", "ERROR", "CRITICAL") else 0)
        self._put(("open", rule, experiment, run_id, "client:" + uuid.uuid4().hex, level,
                   f"{_path(experiment)}: {len(found)} alerts", "\n".join(lines), any(late), True, now))

    def _put(self, job: tuple) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("alerts: %d outcomes dropped, the database is not keeping up", self.dropped)

    # background: outcomes to the database
    async def _write_loop(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._write(job)
            except Exception:
                log.exception("alerts: could not record %s", job[0])
            finally:
                self._queue.task_done()

    async def _write(self, job: tuple) -> None:
        if job[0] == "open":
            _, rule, experiment, run_id, key, level, title, text, late, instant, now = job
            if await self.storage.open_alert(rule["pk"], experiment["namespace"], experiment["id"], run_id, key,
                                             level, title, text, late, now, instant):
                self._wake.set()
        elif job[0] == "resolve":
            if await self.storage.resolve_alert(*job[1:]):
                self._wake.set()
        else:
            _, run, status, error, now = job
            experiment = await self.storage.get_experiment(run["experiment_id"])
            state = run_state(status, error)
            for rule in self.rules_for(experiment):
                wanted = rule["params"]["states"] if rule["kind"] == "state" else ()
                if state in wanted or status in wanted:
                    text = f"run {run['id']} is {state}" + (f": {error}" if error else "")
                    await self._write(("open", rule, experiment, run["id"], f"state:{run['id']}:{state}",
                                       rule["level"], f"{_path(experiment)}: run {state}", text, False, True, now))

    # background: deliveries
    async def _deliver_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                while await self.deliver_due():
                    pass
            except Exception:
                log.exception("alerts: delivery round failed")

    async def deliver_due(self) -> int:
        """Claim the due deliveries (this worker's alone) and send them; how many were claimed."""
        async with self._round:
            claimed = await self.storage.claim_deliveries(self.clock(), self.timeout_s + 30.0, CLAIM_LIMIT)
            await asyncio.gather(*(self._deliver(d) for d in claimed))
            return len(claimed)

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        rule, now = delivery["rule"], self.clock()
        payload, headers = request(delivery["alert"], rule, delivery["event"], now)
        if self.allow.allows_host(urlsplit(rule["webhook_url"]).hostname or ""):
            outcome = await send(self._session, rule["webhook_url"], payload, headers, self.timeout_s)
        else:  # made under a wider allow-list than this server now has (aiohttp resolves no address literal)
            outcome = Outcome(False, None, "the webhook's host is not in ML_DASH_ALERT_WEBHOOK_ALLOW", False, None, 0.0)
        attempts = delivery["attempts"] + 1
        failed = not outcome.ok and (not outcome.retryable or attempts >= self.max_attempts)
        next_at = None if outcome.ok or failed else \
            self.clock() + self.backoff.delay(attempts, outcome.retry_after)
        await self.storage.finish_attempt(delivery["pk"], self.clock(), outcome.http_status, outcome.error,
                                          outcome.seconds, next_at, failed)
        if failed:
            log.warning("alerts: delivery of %s to %s failed after %d attempts: %s", delivery["alert"]["id"],
                        rule["name"], attempts, outcome.error)

    # background: the watchdog tick
    async def _tick_loop(self) -> None:
        last_reload = time.monotonic()
        while True:
            await asyncio.sleep(min(self.tick_s, self.refresh_s))
            try:
                if time.monotonic() - last_reload >= self.refresh_s:
                    await self.reload()
                    last_reload = time.monotonic()
                await self.tick()
            except Exception:
                log.exception("alerts: watchdog tick failed")

    async def _save_beats(self) -> None:
        beats, self._beats = self._beats, {}
        if beats:
            await self.storage.save_heartbeats(beats)

    async def tick(self) -> None:
        """Save the runs' last-seen times (every worker's count), then check the stall rules against them."""
        await self._save_beats()
        now = self.clock()
        for rules in list(self._by_namespace.values()):
            for rule in rules:
                if rule["kind"] == "stall":
                    await self._stall(rule, now)

    async def _stall(self, rule: dict[str, Any], now: float) -> None:
        span, what = rule["params"]["minutes"] * 60.0, rule["params"]["what"]
        runs = await self.storage.running_runs(rule["namespace"], rule["workspace"], rule["directory"],
                                               rule["experiment_id"], STALL_RUNS_LIMIT)
        open_keys = await self.storage.open_alert_keys(rule["pk"])
        stalled = set()
        for run_id, experiment_id, started_at, data_at, beat_at in runs:
            seen = max(t for t in (started_at, beat_at if what == "heartbeat" else data_at) if t is not None)
            key = (experiment_id, f"stall:{run_id}")
            if now - seen < span:
                continue
            stalled.add(key)
            if key not in open_keys:
                experiment = await self.storage.get_experiment(experiment_id)
                quiet = int((now - seen) // 60)
                await self._write(("open", rule, experiment, run_id, key[1], rule["level"],
                                   f"{_path(experiment)}: no {what} for {quiet} min", f"run {run_id} is RUNNING but "
                                   f"sent no {what} for {quiet} minutes", False, False, now))
        for experiment_id, key in open_keys - stalled:
            if await self.storage.resolve_alert(rule["pk"], experiment_id, key, now):
                self._wake.set()
