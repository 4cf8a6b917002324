"""Every path into a run directory is spelled by ``ml_dash.format.layout``, nowhere else.

The check parses each ``ml_dash/**/*.py`` outside ``ml_dash/format/`` (``ast``, no import) and fails on:

* a string literal holding ``.jsonl`` (an f-string's literal parts included), other than a docstring: a stream's
  file name comes from ``layout.stream_path`` / ``layout.STREAM_FILES``;
* a call that builds or opens a path from the meta file's name (``os.path.join``, ``open``, ``os.stat``,
  ``atomic_write``... given ``META_FILE`` or a ``"...meta.json"`` literal; ``_PATH_CALLS`` lists them): that path comes from ``layout.meta_path`` and the file is read with
  ``layout.read_meta``;
* a literal holding ``.meta.json`` outside a docstring: it names the file as ``layout.META_FILE`` does.

A name merely mentioned in a docstring is documentation, not a path, and stays allowed.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ml_dash"
HOME = PACKAGE / "format"


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _names_meta_file(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id == "META_FILE"
    if isinstance(node, ast.Attribute):
        return node.attr == "META_FILE"
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and "meta.json" in node.value


_PATH_CALLS = {"join", "open", "stat", "isfile", "exists", "Path", "atomic_write", "getsize"}


def _callee(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def layout_violations(source: str) -> list[str]:
    """What in ``source`` builds a run-directory path by hand, as ``line: what``."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if ".jsonl" in node.value:
                found.append(f"{node.lineno}: a .jsonl literal {node.value!r}")
            elif ".meta.json" in node.value:
                found.append(f"{node.lineno}: the meta file's name as a literal {node.value!r}")
        elif isinstance(node, ast.Call) and _callee(node) in _PATH_CALLS and any(map(_names_meta_file, node.args)):
            found.append(f"{node.lineno}: a path built from the meta file's name: {ast.unparse(node)[:80]}")
    return found


def test_no_module_outside_format_spells_a_run_file_path():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if HOME in path.parents:
            continue
        for hit in layout_violations(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{hit}")
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_joins_and_literals_but_not_docstrings():
    """The scanner itself: each forbidden form is caught, a docstring naming a file is not."""
    assert layout_violations('"""Rows go to metrics.jsonl."""\n') == []
    assert layout_violations('p = os.path.join(d, f"{stream}.jsonl")\n')
    assert layout_violations('p = os.path.join(d, "logs.jsonl")\n')
    assert layout_violations("p = os.path.join(d, META_FILE)\n")
    assert layout_violations("p = os.path.join(d, layout.META_FILE)\n")
    assert layout_violations("st = os.stat(os.path.join(d, '.ml-logger.meta.json'))\n")
    assert layout_violations("p = meta_path(d)\nfound = META_FILE in names\nlog('no %s', META_FILE)\n") == []
