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
# "media" is the media index (docs/media.md): one line per item, pointing into the packed segment files below; the
# uploader sends each batch of its lines with the bytes they point at.
STREAMS = ("parameters", "metrics", "logs", "system", "media")
STREAM_FILES = {"parameters": "parameters.jsonl", "metrics": "metrics.jsonl", "logs": "logs.jsonl",
                "system": "system.jsonl", "media": "media.jsonl"}
MEDIA_DIR = "media"  # append-only segment files of encoded media: media/000000.seg, media/000001.seg, ...
MEDIA_SEGMENT_SUFFIX = ".seg"
# The server stores "system" rows as metric series under this reserved name prefix (a chart group of their own).
SYSTEM_PREFIX = "system/"
# Status as the meta file spells it (lower case) and as the server's runs carry it (upper case).
RUN_STATUSES = ("RUNNING", "COMPLETED", "FAILED")
FINAL_STATUSES = ("COMPLETED", "FAILED")
TMP_MARK = ".ml-dash-tmp-"  # in the name of a temporary file that atomic_write has not renamed yet


def stream_path(directory: str, stream: str) -> str:
    return os.path.join(directory, STREAM_FILES[stream])


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


def sync_state_path(directory: str) -> str:
    return os.path.join(directory, SYNC_STATE_FILE)


def sync_lock_path(directory: str) -> str:
    return os.path.join(directory, SYNC_LOCK_FILE)


def is_experiment(directory: str) -> bool:
    """Whether ``directory`` holds an experiment (its meta file)."""
    return os.path.isfile(meta_path(directory))


def read_meta(directory: str, strict: bool = False) -> dict:
    """The experiment's meta file as a dict; {} when it is missing or unreadable.

    ``strict``: raise instead, ``OSError`` (``FileNotFoundError`` when missing) or ``orjson.JSONDecodeError`` (also
    for JSON that is not an object), for a caller that reports what is wrong."""
    try:
        with open(meta_path(directory), "rb") as f:
            meta = orjson.loads(f.read())
        if not isinstance(meta, dict):
            raise orjson.JSONDecodeError("the meta file does not hold a JSON object", "", 0)
    except (OSError, orjson.JSONDecodeError):
        if strict:
            raise
        return {}
    return meta


def write_meta(directory: str, meta: dict) -> None:
    """Replace the meta file atomically (``OSError`` if that failed): readers never see it half-written."""
    atomic_write(meta_path(directory), orjson.dumps(meta, option=orjson.OPT_INDENT_2))


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
