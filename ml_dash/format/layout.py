"""Where an experiment's data lives: ``<root>/<namespace>/<workspace>/[<directory>/]<prefix>/`` holds these files."""
from __future__ import annotations

import os

import orjson

META_FILE = ".ml-logger.meta.json"
SYNC_STATE_FILE = ".ml-dash-sync.json"  # what has reached the server (written by the uploader)
SYNC_LOCK_FILE = ".ml-dash-sync.lock"  # held a moment while a process claims the directory's uploader identity
FILES_DIR = "files"
# The append-only streams. Parameters come first: they describe what the metrics belong to, and the uploader sends
# streams in this order. "system" (the sampler's rows, docs/system-metrics.md) has the metrics rows' format with step
# null; an older sync state without it loads with offset 0 for it.
# "console" (the run's captured stdout/stderr, docs/distributed.md) holds rows ``{"timestamp", "stream", "text"}``, the
# text one or more whole lines as read from the pipe. "media" is the media index (docs/media.md): one line per item,
# pointing into the packed segment files below; the uploader sends each batch of its lines with the bytes they point at.
STREAMS = ("parameters", "metrics", "logs", "system", "console", "media")
STREAM_FILES = {"parameters": "parameters.jsonl", "metrics": "metrics.jsonl", "logs": "logs.jsonl",
                "system": "system.jsonl", "console": "console.jsonl", "media": "media.jsonl"}
CONSOLE_STREAMS = ("stdout", "stderr")  # a console row's "stream"
MEDIA_DIR = "media"  # append-only segment files of encoded media: media/000000.seg, media/000001.seg, ...
MEDIA_SEGMENT_SUFFIX = ".seg"
# The server stores "system" rows as metric series under this reserved name prefix (a chart group of their own).
SYSTEM_PREFIX = "system/"
# Series of a rank > 0 of a distributed job are stored under their names with this prefix (rank 3's "loss" is
# "@rank3/loss"): rank 0's keep the plain names, so a job that logs on rank 0 only looks exactly as a plain run.
RANK_SERIES_PREFIX = "@rank"


def rank_series(name: str, rank: int | None) -> str:
    """The stored name of rank ``rank``'s series ``name`` (rank 0 or None: ``name`` itself)."""
    return f"{RANK_SERIES_PREFIX}{rank}/{name}" if rank else name


def series_rank(stored: str) -> tuple[int, str]:
    """(rank, name) of a stored series name: the inverse of ``rank_series``."""
    if stored.startswith(RANK_SERIES_PREFIX):
        head, sep, name = stored[len(RANK_SERIES_PREFIX):].partition("/")
        if sep and head.isdigit() and name:
            return int(head), name
    return 0, stored


# Status as the meta file spells it (lower case) and as the server's runs carry it (upper case). CRASHED is the
# server's verdict on a run whose heartbeats stopped (docs/distributed.md); a client never ends a run with it.
RUN_STATUSES = ("RUNNING", "COMPLETED", "FAILED", "CRASHED")
FINAL_STATUSES = ("COMPLETED", "FAILED")
TMP_MARK = ".ml-dash-tmp-"  # in the name of a temporary file that atomic_write has not renamed yet


def rank_suffix(rank: int | None) -> str:
    """What a rank adds to the names of its files and stream ids: nothing for rank 0 (or no rank: a plain run keeps
    today's names), ``.rank-3`` for rank 3."""
    return f".rank-{rank}" if rank else ""


def stream_path(directory: str, stream: str, rank: int | None = None) -> str:
    """``metrics.jsonl``; rank 3 of a distributed job writes ``metrics.rank-3.jsonl`` beside it (docs/distributed.md)."""
    name = STREAM_FILES[stream]
    if rank:
        name = name[:-len(".jsonl")] + rank_suffix(rank) + ".jsonl"
    return os.path.join(directory, name)


def rank_of_stream_file(name: str) -> tuple[str, int] | None:
    """(stream, rank) of a stream file's base name (``metrics.rank-3.jsonl`` → ("metrics", 3)), None for another."""
    for stream, file in STREAM_FILES.items():
        if name == file:
            return stream, 0
        head = file[:-len(".jsonl")] + ".rank-"
        if name.startswith(head) and name.endswith(".jsonl") and name[len(head):-len(".jsonl")].isdigit():
            return stream, int(name[len(head):-len(".jsonl")])
    return None


def media_segment_path(directory: str, segment: int) -> str:
    """Segment ``segment`` of the experiment's packed media bytes (the media index names segments by number)."""
    return os.path.join(directory, MEDIA_DIR, f"{segment:06d}{MEDIA_SEGMENT_SUFFIX}")


def media_segments(directory: str) -> list[int]:
    """The numbers of the segment files on disk, in order."""
    try:
        names = os.listdir(os.path.join(directory, MEDIA_DIR))
    except FileNotFoundError:
        return []
    return sorted(int(n[:-len(MEDIA_SEGMENT_SUFFIX)]) for n in names
                  if n.endswith(MEDIA_SEGMENT_SUFFIX) and n[:-len(MEDIA_SEGMENT_SUFFIX)].isdigit())


def meta_path(directory: str) -> str:
    return os.path.join(directory, META_FILE)


def files_path(directory: str) -> str:
    """Where ``exp.files`` saves (``files/``): the uploader and the reader walk it."""
    return os.path.join(directory, FILES_DIR)


def sync_state_path(directory: str, rank: int | None = None) -> str:
    """The sync state; each rank > 0 of a job keeps its own (``.ml-dash-sync.rank-3.json``): its streams, its run."""
    if rank:
        return os.path.join(directory, SYNC_STATE_FILE[:-len(".json")] + rank_suffix(rank) + ".json")
    return os.path.join(directory, SYNC_STATE_FILE)


def rank_meta_path(directory: str, rank: int) -> str:
    """Rank > 0's own status file (``.ml-logger.meta.rank-3.json``): the ranks of a job never overwrite each other's
    status; ``META_FILE`` stays rank 0's (or a plain run's)."""
    return os.path.join(directory, META_FILE[:-len(".json")] + rank_suffix(rank) + ".json")


def meta_ranks(directory: str) -> list[int]:
    """The ranks with a status file in ``directory``, ascending: 0 for ``META_FILE`` (a plain run, or rank 0), ``r``
    for ``.ml-logger.meta.rank-r.json``. Empty when it holds no experiment."""
    head, tail = META_FILE[:-len(".json")] + ".rank-", ".json"
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    ranks = {0} if META_FILE in names else set()
    for name in names:
        if name.startswith(head) and name.endswith(tail) and name[len(head):-len(tail)].isdigit():
            ranks.add(int(name[len(head):-len(tail)]))
    return sorted(ranks)


def sync_lock_path(directory: str) -> str:
    return os.path.join(directory, SYNC_LOCK_FILE)


def is_experiment(directory: str) -> bool:
    """Whether ``directory`` holds an experiment (its meta file)."""
    return os.path.isfile(meta_path(directory))


def read_meta(directory: str, strict: bool = False, rank: int | None = None) -> dict:
    """The experiment's meta file as a dict; {} when it is missing or unreadable.

    ``strict``: raise instead, ``OSError`` (``FileNotFoundError`` when missing) or ``orjson.JSONDecodeError`` (also
    for JSON that is not an object), for a caller that reports what is wrong."""
    try:
        with open(rank_meta_path(directory, rank) if rank else meta_path(directory), "rb") as f:
            meta = orjson.loads(f.read())
        if not isinstance(meta, dict):
            raise orjson.JSONDecodeError("the meta file does not hold a JSON object", "", 0)
    except (OSError, orjson.JSONDecodeError):
        if strict:
            raise
        return {}
    return meta


def write_meta(directory: str, meta: dict, rank: int | None = None) -> None:
    """Replace the meta file atomically (``OSError`` if that failed): readers never see it half-written."""
    atomic_write(rank_meta_path(directory, rank) if rank else meta_path(directory),
                 orjson.dumps(meta, option=orjson.OPT_INDENT_2))


def saved_files(top: str) -> list[tuple[str, os.stat_result]]:
    """The files under ``top`` that ``atomic_write`` has finished (its temp files left out), as (path relative to
    ``top`` with ``/`` separators, stat), sorted by path; a file removed during the walk is left out."""
    found = []
    for dirpath, _dirs, names in os.walk(top):
        for name in names:
            if TMP_MARK in name:
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except FileNotFoundError:
                continue
            found.append((os.path.relpath(full, top).replace(os.sep, "/"), st))
    return sorted(found, key=lambda item: item[0])


def atomic_write(path: str, payload: bytes) -> None:
    """Temp file + fsync + rename: a crash never leaves a half-written file under ``path``."""
    import tempfile  # here, not at the top: ~5 ms of ``import ml_dash`` (shutil, random, bz2, ...)

    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_MARK, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
