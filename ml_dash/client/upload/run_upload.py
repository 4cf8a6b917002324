"""Mirror one experiment directory to the server: the experiment, its runs, the three JSONL streams and its files.

Used by the background uploader (one step at a time, paced) and by ``ml-dash sync`` (until caught up). Exactly-once:
a batch covers the byte range ``[start, end)`` of a stream's file and the server applies it only if ``start`` is
where it stopped; the local state only ever moves to offsets the server acknowledged.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

from ml_dash.format.branches import split_at_mark
from ml_dash.format.layout import FINAL_STATUSES, STREAMS, files_path, meta_path, read_meta, saved_files
from ml_dash.client.upload.environment import push_environment
from ml_dash.client.upload.media_batch import read_media_batch
from ml_dash.client.upload.http import PROTOCOL, Conflict, HTTPError, ServerClient, file_url_path
from ml_dash.client.upload.state import SyncState
from ml_dash.client.upload.window import Flight, Flights, extends_acked, read_batch

logger = logging.getLogger("ml_dash")
# A refused tags/notes change is deterministic (105 tags where the server keeps 100) until someone makes room: sent
# again after this many seconds, doubling up to the cap, never in a loop.
ANNOTATION_RETRY_S = 30.0
ANNOTATION_RETRY_CAP_S = 3600.0


class Parked(Exception):
    """The server refused something that retrying cannot fix (auth, validation): stop syncing this run."""


def changed_files(files_dir: str, known: dict[str, list[int]]) -> list[str]:
    """Closed files (not temp files of an atomic save in progress) that are new or changed since uploaded."""
    return [path for path, st in saved_files(files_dir) if known.get(path) != [st.st_size, st.st_mtime_ns]]


def _excerpt(value: Any, limit: int = 200) -> str:
    text = value.decode(errors="replace").strip() if isinstance(value, bytes) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


class RunUpload:
    def __init__(self, api: ServerClient, state: SyncState, identity: dict[str, Any], max_events: int = 50_000,
                 max_bytes: int = 4 << 20, on_ids: Callable[[str | None, str | None], None] | None = None,
                 on_acked: Callable[[str, int], None] | None = None, window: int = 4) -> None:
        self.api = api
        self.state = state
        self.identity = identity  # namespace, workspace, prefix, directory, readme, hostname
        self.environment: dict[str, Any] | None = identity.get("environment")  # the meta's, once captured
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.window = max(1, window)  # batches of one stream in flight at most (window.py), if the server orders them
        self.ordered = False  # the server holds batches sent ahead until their turn (GET …/streams says so)
        self.flights = {s: Flights() for s in STREAMS}
        self.on_ids = on_ids or (lambda experiment_id, run_id: None)
        self.on_acked = on_acked or (lambda stream, nbytes: None)
        self.ready = False  # experiment known and server offsets read in this session
        self.sent = {s: 0 for s in STREAMS}  # events acknowledged in this session
        self.files_sent = 0
        self.statuses_sent: list[str] = []
        self.resets = 0  # consecutive re-registrations after a 404, to stop a loop against a broken server
        # stream -> (offset, events): after a 400 for a batch, smaller batches up to that offset isolate the bad line
        self.isolating: dict[str, tuple[int, int]] = {}
        self.skipped = {s: 0 for s in STREAMS}  # lines the server refused, dropped and reported
        self._meta_seen: tuple | None = None  # (inode, mtime, size) of a meta file with no annotations to send
        # field -> {"body", "attempts", "retry_at"}: tags or notes the server refused, held back until retry_at
        self.refused: dict[str, dict[str, Any]] = {}
        self.unknown_streams: set[str] = set()  # streams the server's /health does not list: never sent
        self.fork_warned = False
        self.heartbeats = False  # the live uploader sends heartbeats for its open run (``ml-dash sync`` does not)
        state.bind_remote(api.base_url)

    # -- setup ----------------------------------------------------------------------------------------------------
    async def setup(self) -> None:
        protocol = await self.api.protocol()
        if protocol != PROTOCOL:  # compatibility is the protocol number /health answers (docs/protocol.md)
            raise Parked(f"the server at {self.api.base_url} speaks protocol {protocol}, this client protocol "
                         f"{PROTOCOL}: upgrade the one that is older; the data stays local (ml-dash sync sends it later)")
        taken = await self.api.streams()
        for stream in sorted(set(STREAMS) - taken if taken is not None else ()):
            if stream not in self.unknown_streams:
                logger.warning("ml-dash: the server at %s does not take the %r stream (an older version?): %s "
                               "stays local only", self.api.base_url, stream, self.state.stream_path(stream))
                self.unknown_streams.add(stream)
        ident = self.identity
        body = {k: ident[k] for k in ("namespace", "workspace", "prefix") if ident.get(k)}
        for optional in ("directory", "readme", "hostname"):
            if ident.get(optional):
                body[optional] = ident[optional]
        fork = ident.get("fork") or read_meta(self.state.directory).get("fork")
        if isinstance(fork, dict) and not self.state.fork_sent:
            body["fork"] = {"parent": fork.get("parent"), "step": fork.get("step")}
        answer = await self._call("POST", "/experiments", body)
        if "fork" in body:
            self._forked(answer)
        if answer["experiment_id"] != self.state.experiment_id:
            self.state.experiment_id = answer["experiment_id"]
            self.state.save()
        # The server's offsets are the truth (our file may be older than its last answer, or it may have been reset).
        answer = await self._call("GET", f"/experiments/{self.state.experiment_id}/streams")
        offsets = answer["streams"]
        self.ordered = answer.get("ordered") is True
        self.state.acked = {s: int(offsets.get(self.state.stream_id(s), 0)) for s in STREAMS}
        self.state.save()
        self.ready = True
        self.on_ids(self.state.experiment_id, None)

    def _forked(self, answer: dict) -> None:
        if answer.get("forked"):
            self.state.fork_sent = True
            self.state.save()
        elif not self.fork_warned:  # its parent is not on the server yet: setup asks again next session
            self.fork_warned = True
            logger.warning("ml-dash: %s: %s; the fork is recorded when its parent reaches the server (ml-dash sync)",
                           self.state.directory, answer.get("fork_pending"))

    async def ensure_runs(self) -> None:
        for run in self.state.runs:
            # A run's branch step (its mark, docs/branches.md) goes with its registration, or after it, before data.
            branch_due = run.get("branch_step") is not None and not run.get("branch_sent")
            if run["run_id"] is None or branch_due:
                body = {"client_run_id": run["client_run_id"], "started_at": run["started_at"]}
                if run.get("hostname"):
                    body["hostname"] = run["hostname"]
                if branch_due:
                    body["branch_step"] = run["branch_step"]
                for key in ("job_id", "rank", "world_size"):  # a rank of a distributed job (docs/distributed.md)
                    if run.get(key) is not None:
                        body[key] = run[key]
                if self.heartbeats and run["status"] == "RUNNING":
                    body["heartbeat"] = True  # this process is alive and says so: the server may mark it CRASHED
                answer = await self._call("POST", f"/experiments/{self.state.experiment_id}/runs", body)
                run["run_id"] = answer["run_id"]
                run["sent_status"] = run["sent_status"] or "RUNNING"  # a new run starts RUNNING on the server
                run["branch_sent"] = run.get("branch_sent") or branch_due
                self.state.run_ids[run["client_run_id"]] = run["run_id"]
                self.state.save()
        current = self.state.current_run()
        if current is not None:
            self.on_ids(None, current["run_id"])

    # -- data -----------------------------------------------------------------------------------------------------
    async def push_stream(self, stream: str) -> bool:
        """Keep up to ``window`` batches of ``stream`` in flight and settle the oldest; ``True`` if more is waiting
        (a full batch, or batches still in flight: do not pause)."""
        flights = self.flights[stream]
        waiting = self._launch(stream, full_only=bool(flights))
        if not flights:
            return waiting  # a run's registration comes first: the next round, at once
        flight = flights.popleft()
        try:
            answer = await flight.task
        except HTTPError as error:
            flights.drop()  # the ranges after a refused one start again from the acknowledged offset
            return await self._refused(stream, flight, error)
        except BaseException:
            flights.drop()
            raise
        self._settle(stream, flight, answer)
        # Only full batches go ahead: a partial one waits for the round's pause, which keeps the steady-state pace.
        self._launch(stream, full_only=True)
        return flight.full or bool(flights)

    def _launch(self, stream: str, full_only: bool) -> bool:
        """Start batches of ``stream`` up to the window; True when one waits for its run's registration."""
        flights = self.flights[stream]
        path = self.state.stream_path(stream)
        start = flights.next_start
        if start is None:
            start = self.state.acked[stream]
            if start and not extends_acked(path, start):
                logger.warning("ml-dash: %s no longer extends the %d bytes the server acknowledged (replaced or "
                               "truncated); uploading its content as a new stream", path, start)
                self.state.restart_stream(stream)
                start = 0
        max_events = self.max_events
        isolating = self.isolating.get(stream)
        if isolating is not None:
            if start >= isolating[0]:
                del self.isolating[stream]
            else:
                max_events = min(max_events, isolating[1])
        limit = self.window if self.ordered and stream not in self.isolating else 1
        while len(flights) < limit:
            payload = None
            if stream == "media":  # index lines with the bytes they name (media_batch.py)
                lines, count, end, full, payload = read_media_batch(self.state.directory, path, start, max_events,
                                                                    self.max_bytes)
            else:
                lines, count, end, full = read_batch(path, start, max_events, self.max_bytes)
            if end == start or (full_only and not full):
                return False
            current = self.state.current_run()
            run_id = current["run_id"] if current else None
            if stream == "metrics":  # the run a range belongs to is the one its last mark names (format.branches)
                cut, mark = split_at_mark(lines)
                if len(cut) < len(lines):
                    lines, end, full = cut, start + len(cut), True
                    count = lines.count(b"\n")
                run = self.state.note_mark(start, mark) if mark is not None else None
                governing = self.state.run_at(start)
                if governing is not None:
                    run = self.state.find_run(governing)
                    if run is not None and (run["run_id"] is None
                                            or (run.get("branch_step") is not None and not run.get("branch_sent"))):
                        return True
                    run_id = self.state.run_ids.get(governing, run_id)
            body = {"run_id": run_id, "stream": stream,
                    "stream_id": self.state.stream_id(stream), "start": start, "end": end, "lines": lines}
            if self.state.rank:
                body["rank"] = self.state.rank  # the server keeps this rank's series apart from rank 0's
            if payload is not None:
                body["payload"] = payload
            flights.send(body, start, end, count, full, self._post_batch)
            start, full_only = end, True
        return False

    async def _post_batch(self, body: dict) -> dict:
        return await self._call("POST", f"/experiments/{self.state.experiment_id}/batches", body)

    async def _refused(self, stream: str, flight: Flight, error: HTTPError) -> bool:
        """The server refused ``flight`` (the oldest batch in flight; the others were dropped)."""
        start, end, count, body = flight.start, flight.end, flight.count, flight.body
        if isinstance(error, Conflict):
            if body.get("ahead"):
                # Its 409 may predate the batch before it being stored: ask the server where the stream stands.
                offsets = (await self._call("GET", f"/experiments/{self.state.experiment_id}/streams"))["streams"]
                acked = int(offsets.get(self.state.stream_id(stream), 0))
            else:
                acked = error.acked
            logger.debug("ml-dash: %s resumes at server offset %d (was %d)", stream, acked, start)
            self._acked(stream, acked, 0)
            return True
        if error.status == 413 and count > 1:
            self.max_events = max(1, count // 2)
            self.max_bytes = max(1024, self.max_bytes // 2)
            return True
        if error.status != 400:
            raise error
        isolating = self.isolating.get(stream)
        if count > 1:
            # One bad line must not block the rest of the run: halve the batches up to this one's end until the
            # refused line is alone in its batch (a server that refuses records, not batches, never gets here).
            until = max(end, isolating[0] if isolating else 0)
            self.isolating[stream] = (until, max(1, count // 2))
            return True
        answer = await self._skip_line(stream, body, error)
        self.isolating.pop(stream, None)  # full batches again: another bad line further on is isolated anew
        self._settle(stream, flight, answer)
        return True

    def _settle(self, stream: str, flight: Flight, answer: dict) -> None:
        self._acked(stream, int(answer.get("acked", flight.end)), int(answer.get("stored", 0)))
        rejected = answer.get("rejected")
        if rejected:
            self.skipped[stream] += len(rejected) if isinstance(rejected, list) else 1
            logger.warning("ml-dash: the server refused %s record(s) of %s (bytes %d-%d), which were dropped: %s",
                           len(rejected) if isinstance(rejected, list) else rejected,
                           self.state.stream_path(stream), flight.start, flight.end, _excerpt(rejected))

    def drop_flights(self) -> None:
        for flights in self.flights.values():
            flights.drop()

    async def _skip_line(self, stream: str, body: dict, error: HTTPError) -> dict:
        """The server refused a batch of one line: send its byte range as a blank line (the server skips those, so the
        offsets stay exact), and report the line dropped. ``Parked`` stands if even that is refused."""
        line = body["lines"]
        blank = dict(body, lines=b" " * (len(line) - 1) + b"\n")
        if "payload" in blank:  # a blank line names no bytes
            blank["payload"] = b""
        answer = await self._call("POST", f"/experiments/{self.state.experiment_id}/batches", blank)
        self.skipped[stream] += 1
        logger.warning("ml-dash: the server refused a line of %s (bytes %d-%d): %s; the line was dropped "
                       "and the upload goes on: %s", self.state.stream_path(stream), body["start"], body["end"],
                       error.message, _excerpt(line))
        return answer

    def _acked(self, stream: str, acked: int, stored: int) -> None:
        before = self.state.acked[stream]
        self.state.acked[stream] = acked
        self.state.save()
        self.sent[stream] += stored
        self.on_acked(stream, acked - before)

    async def push_files(self) -> int:
        files_dir = files_path(self.state.directory)
        uploaded = 0
        for rel in changed_files(files_dir, self.state.files):
            seen: list[int] = []

            def remember(size: int, mtime_ns: int) -> None:
                seen[:] = [size, mtime_ns]  # the version actually sent, not the one scanned a moment earlier

            try:
                await self.api.call("PUT", file_url_path(self.state.experiment_id, rel),
                                    file_path=os.path.join(files_dir, rel), on_open=remember)
            except FileNotFoundError:
                continue  # deleted (or replaced and gone) since the scan
            except HTTPError as error:
                if error.status == 404:
                    raise
                # One bad file (a name the server refuses) must not stop the rest; remember it to not retry forever.
                logger.error("ml-dash: file %s was not uploaded: %s", rel, error)
            self.state.files[rel] = seen
            self.state.save()
            uploaded += 1
            self.files_sent += 1
        return uploaded

    def annotations_due(self) -> dict[str, Any] | None:
        """The meta file's tags and notes when the server has not acknowledged their revision yet, else None."""
        try:  # the meta file is re-read only when it changed (it is rewritten whole: a new inode each time)
            st = os.stat(meta_path(self.state.directory))
            seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            seen = None
        if seen is not None and seen == self._meta_seen:
            return None
        meta = read_meta(self.state.directory)
        revision = meta.get("annotations_revision")
        if not isinstance(revision, int) or revision <= self.state.annotations.get("revision", 0):
            self._meta_seen = seen  # nothing to send in this version of the file
            return None
        return {"revision": revision, "tags": list(meta.get("tags") or []), "notes": meta.get("notes")}

    def annotation_changes(self, due: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Each field of ``due`` the server has not acknowledged, as the PATCH body that sends it. Tags go as the
        additions and removals since the last acknowledged upload, so tags added elsewhere (the dashboard) stay."""
        sent = self.state.annotations
        before = sent.get("tags") or []
        changes: dict[str, dict[str, Any]] = {}
        add, remove = [t for t in due["tags"] if t not in before], [t for t in before if t not in due["tags"]]
        if add or remove:
            changes["tags"] = {"add_tags": add, "remove_tags": remove}
        if due["notes"] != sent.get("notes"):
            changes["notes"] = {"notes": due["notes"]}
        return changes

    def _held_back(self, field: str, body: dict[str, Any], now: float) -> bool:
        """The server refused this very change and its backoff has not passed: do not send it again yet."""
        refused = self.refused.get(field)
        return refused is not None and refused["body"] == body and now < refused["retry_at"]

    async def push_annotations(self) -> None:
        """Tags and notes changed by this client (``exp.tags``, ``exp.notes``), each field in its own request, so a
        refused one (105 tags when the server keeps 100) never holds back the other. A refused change is not marked
        sent: it stays pending, is reported once (one WARNING naming the field and the server's reason) and is sent
        again after a backoff (``ANNOTATION_RETRY_S``, doubling), or at once when the client changes it again."""
        due = self.annotations_due()
        if due is None:
            return
        sent, now = self.state.annotations, time.monotonic()
        for field, body in self.annotation_changes(due).items():
            if self._held_back(field, body, now):
                continue
            try:
                await self._call("PATCH", f"/experiments/{self.state.experiment_id}", body)
            except HTTPError as error:
                if error.status != 400:
                    raise
                previous = self.refused.get(field)
                attempts = previous["attempts"] + 1 if previous and previous["body"] == body else 1
                delay = min(ANNOTATION_RETRY_CAP_S, ANNOTATION_RETRY_S * 2 ** (attempts - 1))
                self.refused[field] = {"body": body, "attempts": attempts, "retry_at": now + delay}
                report = logger.warning if attempts == 1 else logger.debug
                report("ml-dash: the server refused the %s of %s: %s; they stay pending and are sent again in %.0fs "
                       "or when they change", field, self.state.directory, error.message, delay)
                continue
            self.refused.pop(field, None)
            sent[field] = due[field]
        if not self.annotation_changes(due):
            sent["revision"] = due["revision"]
        self.state.annotations = sent
        self.state.save()

    def retry_refused(self) -> None:
        """Send refused tags/notes again at the next round (a new run starts: the server may have room by now)."""
        self.refused.clear()

    def annotations_waiting(self) -> bool:
        """Tags or notes to send that are not held back by a refusal (those were reported and wait for a retry)."""
        due = self.annotations_due()
        now = time.monotonic()
        return due is not None and any(not self._held_back(field, body, now)
                                       for field, body in self.annotation_changes(due).items())

    def backlogged(self) -> bool:
        """A quarter of a full batch or more is waiting: the uploader is behind, even if its last batch was not full
        (it was read while the writer was still appending), so it goes on without the steady-state pause."""
        return any(pending >= self.max_bytes // 4 for stream, pending in self.state.pending_bytes().items()
                   if stream not in self.unknown_streams)

    # -- status ---------------------------------------------------------------------------------------------------
    def caught_up(self) -> bool:
        """No complete line beyond what the server acknowledged (an unterminated tail is not data yet)."""
        for stream, pending in self.state.pending_bytes().items():
            if pending and stream not in self.unknown_streams:
                with open(self.state.stream_path(stream), "rb") as f:
                    f.seek(self.state.acked[stream])
                    if b"\n" in f.read(pending):
                        return False
        return True

    async def push_statuses(self) -> None:
        """Final statuses, only once every byte before them has been acknowledged (status follows the data)."""
        if not self.caught_up():
            return
        for run in self.state.runs:
            if run["run_id"] is not None and run["status"] in FINAL_STATUSES and run["sent_status"] != run["status"]:
                body = {"status": run["status"]}
                if run.get("error") is not None:
                    body["error"] = run["error"]
                if run.get("ended_at") is not None:
                    body["ended_at"] = run["ended_at"]
                await self._call("PATCH", f"/runs/{run['run_id']}", body)
                run["sent_status"] = run["status"]
                self.statuses_sent.append(run["status"])
                self.state.forget_finished_runs()
                self.state.save()

    def finished(self) -> bool:
        """Everything on disk is on the server, including the final status of every ended run."""
        environment = self.environment
        return self.caught_up() and not changed_files(files_path(self.state.directory), self.state.files) \
            and not self.annotations_waiting() \
            and all(r["sent_status"] == r["status"] for r in self.state.runs if r["status"] in FINAL_STATUSES) \
            and (not isinstance(environment, dict) or environment.get("captured_at") == self.state.environment_sent)

    # -- one round ------------------------------------------------------------------------------------------------
    async def step(self, with_files: bool = True) -> bool:
        """Setup if needed, then one batch per stream, new files and due statuses; ``True`` if more is waiting."""
        try:
            if not self.ready:
                await self.setup()
            await self.ensure_runs()
            await self.push_annotations()
            requests = self.api.requests
            # Another process of this directory may have had these bytes acknowledged already (state.py: one identity).
            self.state.adopt_saved_offsets([s for s in STREAMS if not self.flights[s] and s not in self.isolating])
            behind = False
            for stream in STREAMS:
                if stream not in self.unknown_streams:
                    behind = await self.push_stream(stream) or behind
            await push_environment(self)
            if with_files:
                await self.push_files()
            if not behind:
                await self.push_statuses()
            self.resets = 0
            # A torn last line sends nothing: only a round that sent something may skip the pause for the backlog.
            return behind or (self.api.requests > requests and self.backlogged())
        except BaseException as error:
            self.drop_flights()  # their tasks must not outlive this round's failure (or a cancelled upload)
            if not isinstance(error, HTTPError):
                raise
            if error.status == 404 and self.resets < 3:
                self.resets += 1
                # The server lost the experiment or run (a wiped data dir): register again and resend from 0.
                logger.warning("ml-dash: %s; registering the experiment again", error)
                self.ready = False
                self.state.bind_remote("reset:")
                self.state.bind_remote(self.api.base_url)
                return True
            raise Parked(str(error)) from error

    async def heartbeat(self) -> None:
        """Tell the server the open run's process is alive (a run registered with ``heartbeat``)."""
        run = self.state.current_run()
        if self.ready and run is not None and run["run_id"] is not None and run["status"] == "RUNNING":
            await self._call("POST", f"/runs/{run['run_id']}/heartbeat")

    async def _call(self, method: str, path: str, body: Any = None) -> dict:
        return await self.api.call(method, path, body)
