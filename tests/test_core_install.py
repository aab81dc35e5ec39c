"""A core-only install works: `pia` and the library run with only `[project] dependencies` installed.

Installing a second environment from scratch would copy several GB of torch, so the test builds the same thing
cheaply: a folder that holds links to exactly the installed distributions that the core requirements need
(their closure, read from the installed metadata), and a Python that sees that folder and the source tree and
nothing else. The extras (`[hf]`, `[lightning]`, `[book]`, `[dev]`) are then truly absent: an import of one of
them from a core module fails here as it would for a user.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

# the library modules that belong to an extra: everything else must import with the core alone
EXTRA_MODULES = ("pytorch_in_action.lightning",)
ROOT = Path(__file__).resolve().parents[1]


def _core_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"]]


def _closure(requirements: list[Requirement]) -> dict[str, metadata.Distribution]:
    """The installed distributions these requirements pull in, transitively (markers evaluated here)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [(r, frozenset()) for r in requirements]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        req, extras = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            continue
        key = (name, frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"core requirement {req} is not installed in this environment")
        found[name] = dist
        for sub in dist.requires or []:
            todo.append((Requirement(sub), frozenset(req.extras)))
    return found


def _top_level_entries(dist: metadata.Distribution) -> set[str]:
    """The first path components a distribution installed into site-packages (packages, modules, .pth...)."""
    names = set()
    for f in dist.files or []:
        first = f.parts[0]
        if first not in {"..", "__pycache__"} and not first.endswith(".data"):
            names.add(first)
    return names


@pytest.fixture(scope="module")
def core_site(tmp_path_factory) -> Path:
    site_packages = Path(metadata.distribution("torch").locate_file(""))
    dists = _closure(_core_requirements())
    folder = tmp_path_factory.mktemp("core-site")
    for dist in dists.values():
        for entry in _top_level_entries(dist):
            src = site_packages / entry
            if src.exists() and not (folder / entry).exists():
                (folder / entry).symlink_to(src)
    return folder


def _run_core(core_site: Path, code: str, tmp_path: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # -S: no site-packages but the core folder (added with its .pth files) and the source tree
    boot = f"import site, sys; site.addsitedir({str(core_site)!r}); sys.path.insert(0, {str(ROOT / 'src')!r})\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PIA_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, "-S", "-c", boot + code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_extras_are_really_absent(core_site, tmp_path):
    res = _run_core(core_site, "import importlib.util as u\n"
                    "print(*[m for m in ('lightning', 'matplotlib', 'datasets', 'accelerate', 'nbclient', 'pytest')"
                    " if u.find_spec(m) is not None])", tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == []


def test_every_core_module_imports_with_the_core_alone(core_site, tmp_path):
    code = ("import pkgutil, importlib, pytorch_in_action as p\n"
            f"extra = {EXTRA_MODULES!r}\n"
            "names = [m.name for m in pkgutil.walk_packages(p.__path__, 'pytorch_in_action.')\n"
            "         if not m.name.startswith(extra)]\n"
            "for n in names:\n"
            "    importlib.import_module(n)\n"
            "print(len(names))\n")
    res = _run_core(core_site, code, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert int(res.stdout.split()[-1]) > 20


@pytest.mark.slow
def test_pia_image_train_runs_with_the_core_alone(core_site, tmp_path):
    code = ("import sys\nfrom pytorch_in_action.cli import main\n"
            "sys.exit(main(['image', 'train', '--epochs', '1', '--out', 'run']))\n")
    res = _run_core(core_site, code, tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").is_file()
    assert "val_top1" in (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8")
