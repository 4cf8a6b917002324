"""No module reaches into another object's private members.

Parses each ``ml_dash/**/*.py`` (``ast``, no import) and fails on

* ``obj._name`` where ``obj`` is anything but ``self`` or ``cls`` (``self._exp._in_run`` included: the outer access
  is on ``self._exp``), dunders such as ``obj.__class__`` left alone;
* ``from module import _name``: a private name taken across modules.

What a collaborator needs gets a public-internal name on its owner (``Experiment.in_run``, ``ensure_run()``,
``store_key``...). The exceptions below are explicit, each with its reason; a new one needs one too.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ml_dash"

# (module path relative to ml_dash/, the access as written) -> why it is allowed
ALLOWED = {
    ("client/annotations.py", "other._current"):
        "Tags comparing itself with another Tags: the same class's own member",
    ("client/metrics.py", "logger._children"):
        "set_in_run walks MetricsLogger's own tree of namespaced children, in the class's module",
    ("integrations/_common.py", "from torch.distributed.distributed_c10d import _get_default_store"):
        "the process group's key-value store (rank 0 publishes the job's prefix there); torch has no public getter",
    ("integrations/lightning.py", "from lightning.pytorch.loggers.utilities import _scan_checkpoints"):
        "Lightning's own loggers use it to find checkpoints; no public equivalent exists",
    ("server/ingest.py", "inner._metric_events"):
        "server code (owned elsewhere): a wrapper reaching the ingest object it wraps",
    ("server/storage/copy.py", "parts._replace"):
        "namedtuple's public API is spelled with an underscore",
    ("server/storage/copy.py", "store._pool"):
        "server code (owned elsewhere): the copy tool borrows the store's connection pool",
}


def private_accesses(source: str) -> list[tuple[int, str]]:
    """(line, the access as written) for each private access in ``source`` that the rules above forbid."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            found.append((node.lineno, f"{ast.unparse(node.value)}.{name}"))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append((node.lineno, f"from {'.' * node.level}{node.module or ''} import {alias.name}"))
    return found


def test_no_private_member_is_reached_from_outside():
    offenders, used = [], set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        for line, access in private_accesses(path.read_text(encoding="utf-8")):
            if (module, access) in ALLOWED:
                used.add((module, access))
            else:
                offenders.append(f"ml_dash/{module}:{line}: {access}")
    assert not offenders, "private members reached from outside (add a public-internal name):\n" + "\n".join(offenders)
    assert used == set(ALLOWED), f"allow-list entries no longer needed: {sorted(set(ALLOWED) - used)}"


def test_the_check_sees_reach_ins_and_private_imports_only():
    assert private_accesses("self._x = 1\ncls._y\nobj.__class__\nobj.public\n") == []
    assert private_accesses("self._exp._in_run\n") == [(1, "self._exp._in_run")]
    assert private_accesses("exp._store_key\n") == [(1, "exp._store_key")]
    assert private_accesses("from ml_dash.client.values import _helper\n") == [
        (1, "from ml_dash.client.values import _helper")]
