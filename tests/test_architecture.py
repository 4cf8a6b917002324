"""The import contracts of pyproject.toml hold (so CI checks them), and the layout rules they cannot express."""
from __future__ import annotations

import os
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
