"""The package's layers import only downwards (docs/architecture.md): every import of every library module, read
with `ast` (imports inside functions included), against the forbidden pairs."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pytorch_in_action"
OUTSIDE = {"tests", "benchmarks", "tools", "notebooks", "piatest", "conftest", "_timing"}  # never library code
FORBIDDEN = {  # part of the package -> the parts it must never import
    "layers": {"models", "fast", "train", "recipes", "lightning", "cli", "data", "text"},
    "generation": {"layers", "models", "fast", "train", "recipes", "lightning", "cli", "data", "text"},
    "models": {"fast", "train", "recipes", "lightning", "cli"},
    "fast": {"train", "recipes", "lightning", "cli"},
    "train": {"models", "recipes", "lightning", "cli", "fast"},
    "data": {"models", "fast", "train", "recipes", "lightning", "cli"},
    "text": {"models", "fast", "recipes", "lightning", "cli"},
    "lightning": {"recipes", "cli", "fast"},
}


def imported_modules(path: Path, package_root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file; `from .. import x` counts as importing `..x`."""
    package = ["pytorch_in_action", *path.relative_to(package_root).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module) if p)
            if node.module:
                found.append((node.lineno, module))
            else:  # from . import a, b: each name is a module of that package
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations(package_root: Path = PACKAGE) -> list[str]:
    """One line per forbidden import under `package_root` (the package's folder)."""
    bad = []
    for path in sorted(package_root.rglob("*.py")):
        rel = path.relative_to(package_root)
        part = rel.parts[0] if len(rel.parts) > 1 else rel.stem  # `models` for models/gpt2.py
        for line, module in imported_modules(path, package_root):
            names = module.split(".")
            where = f"{rel}:{line} imports {module}"
            if names[0] in OUTSIDE:
                bad.append(f"{where} (the library never imports {names[0]})")
            elif names[0] == "pytorch_in_action" and len(names) > 1 and names[1] in FORBIDDEN.get(part, ()):
                bad.append(f"{where} ({part} must not import {names[1]})")
    return bad


def test_the_library_imports_only_downwards():
    assert violations() == []


@pytest.mark.parametrize("source, part, expected", [
    ("from pytorch_in_action.fast import cpu_decoder\n", "models", "models must not import fast"),
    ("def f():\n    from pytorch_in_action.recipes import translation\n", "train", "train must not import recipes"),
    ("from ..models import gpt2\n", "layers", "layers must not import models"),
    ("import benchmarks._timing\n", "data", "the library never imports benchmarks"),
])
def test_a_forbidden_import_is_found(tmp_path, source, part, expected):
    """The checker itself: a forbidden import, also inside a function or written relative, is reported."""
    root = tmp_path / "pytorch_in_action"
    (root / part).mkdir(parents=True)
    (root / part / "mod.py").write_text(source)
    found = violations(root)
    assert len(found) == 1 and expected in found[0]
