"""The import contracts of pyproject.toml hold (so CI checks them), and the layout rules they cannot express."""
from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ml_dash"


def test_import_contracts_hold():
    """lint-imports: no cycle at any depth, the layers, format a leaf, the API without sink or uploader."""
    linter = Path(sys.executable).with_name("lint-imports")
    answer = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert answer.returncode == 0, answer.stdout[-4000:] + answer.stderr[-2000:]
    assert "0 broken" in answer.stdout


def test_no_module_is_over_500_lines():
    """Python and JavaScript modules stay small enough to read in one sitting."""
    too_long = []
    for path in list(PACKAGE.rglob("*.py")) + list(PACKAGE.rglob("*.js")):
        if "vendor" in path.parts:
            continue
        with open(path, encoding="utf-8") as f:
            lines = sum(1 for _ in f)
        if lines > 500:
            too_long.append(f"{path.relative_to(ROOT)}: {lines}")
    assert not too_long, too_long


def test_package_init_files_only_reexport():
    """``__init__`` modules hold docstrings and re-exports, never code."""
    for path in PACKAGE.rglob("__init__.py"):
        source = path.read_text(encoding="utf-8")
        assert "def " not in source and "class " not in source, os.fspath(path.relative_to(ROOT))


# --- Prose that names modules must name modules that exist -------------------------------------------------------

ARCHITECTURE = ROOT / "docs" / "architecture.md"
_BACKQUOTED = re.compile(r"``?([^`\s]+?)``?")
_DOTTED = re.compile(r"^ml_dash(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_PATHLIKE = re.compile(r"^[\w./]+\.(py|js)$")


def _module_files() -> list[str]:
    """Every file under ml_dash/ a path reference may point at, relative to the package (``client/upload/http.py``)."""
    return sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
                  if p.suffix in (".py", ".js") and "__pycache__" not in p.parts and "vendor" not in p.parts)


def _resolves_dotted(name: str) -> bool:
    """``ml_dash.a.b`` names a module or package on disk, or one attribute of one (``ml_dash.query.api.Api``)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        base = PACKAGE.parent.joinpath(*parts[:cut])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            rest = parts[cut:]
            if not rest:
                return True
            if len(rest) > 2:
                return False
            module = importlib.import_module(".".join(parts[:cut]))
            obj = getattr(module, rest[0], None)
            return obj is not None and (len(rest) == 1 or hasattr(obj, rest[1]))
    return False


def _resolves_path(ref: str, files: list[str]) -> bool:
    """A path reference resolves from the repository root, from the package, or as the tail of one file's path
    (``upload/http.py`` for ``client/upload/http.py``, ``js/charts.js`` for ``server/static/js/charts.js``)."""
    ref = ref.removeprefix("./")
    if (ROOT / ref).is_file() or (PACKAGE / ref.removeprefix("ml_dash/")).is_file():
        return True
    return any(f == ref or f.endswith("/" + ref) for f in files)


_RELATIVE_DOTTED = re.compile(r"^(_?[a-z]\w*)(\.[A-Za-z_]\w*)+$")
TOP_LEVEL = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()} - {"__init__"}


def _references(text: str) -> list[str]:
    """Backquoted tokens that name a module: ``ml_dash.x.y``, ``x/y.py`` or ``y.py``, and dotted names relative to
    the package (``format.layout``, ``client.events.KIND``) or to a private module (``_metrics.log``)."""
    refs = []
    for token in _BACKQUOTED.findall(text):
        token = token.strip("()[],:;").split(":")[0]
        if token.startswith("/"):
            continue  # a URL path, not a module
        if _DOTTED.match(token) or (_PATHLIKE.match(token) and ("/" in token or token.endswith(".py"))):
            refs.append(token)
        elif (m := _RELATIVE_DOTTED.match(token)) and (m.group(1) in TOP_LEVEL or m.group(1).startswith("_")):
            refs.append(token if m.group(1).startswith("_") else "ml_dash." + token)
    return refs


def _unresolved(text: str, files: list[str]) -> list[str]:
    bad = []
    for ref in _references(text):
        if ref.startswith("ml_dash.") and not ref.endswith((".py", ".js")):
            if not _resolves_dotted(ref):
                bad.append(ref)
        elif ref.startswith("_") and not ref.endswith((".py", ".js")):
            if not any(f.rsplit("/", 1)[-1] == ref.split(".")[0] + ".py" for f in files):
                bad.append(ref)
        elif not _resolves_path(ref, files):
            bad.append(ref)
    return bad


def test_backquoted_module_references_resolve():
    """Every backquoted module reference (``ml_dash.x.y`` or ``x/y.py``) in a docstring of the package and in
    docs/architecture.md names a module that exists, so a move that forgets the prose fails here."""
    files = _module_files()
    stale = [f"docs/architecture.md: {ref}" for ref in _unresolved(ARCHITECTURE.read_text(encoding="utf-8"), files)]
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    stale += [f"{path.relative_to(ROOT)}: {ref}" for ref in _unresolved(doc, files)]
    assert not stale, "\n".join(stale)


def _tree_block() -> list[str]:
    """The code block under '## The package' in docs/architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## The package", 1)[1]
    return section.split("```", 2)[1].splitlines()[1:]


def _tree_entries(lines: list[str]) -> set[str]:
    """Paths the tree names. A line is ``<indent><names>  <description>``: the names are the tokens before the first
    run of two spaces; a name ending in ``/`` opens a folder for the more indented lines below it."""
    entries: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, folder path)
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0].split()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        for name in names:
            path = parent + name
            entries.add(path.rstrip("/"))
            if name.endswith("/"):
                stack.append((indent, path))
    return entries


def test_architecture_tree_lists_exactly_the_modules_on_disk():
    """The tree in docs/architecture.md names every Python module and package of ml_dash (``__init__.py`` files
    aside) and nothing that is not there."""
    on_disk = {"ml_dash"}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent)
        if "__pycache__" in rel.parts:
            continue
        for i in range(1, len(rel.parts)):
            on_disk.add("/".join(rel.parts[:i]))
        if path.name != "__init__.py" or len(rel.parts) == 2:  # the root's __init__ is the public surface: listed
            on_disk.add(rel.as_posix())
    listed = {e for e in _tree_entries(_tree_block()) if e.endswith(".py") or "." not in e.rsplit("/", 1)[-1]}
    listed = {e for e in listed if not e.startswith("ml_dash/server/static")}
    missing, extra = sorted(on_disk - listed), sorted(listed - on_disk)
    assert not missing and not extra, f"missing from the tree: {missing}\nlisted but not on disk: {extra}"
