"""Helpers shared by the tests (importable as `piatest` thanks to pytest's pythonpath setting)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def pia(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m pytorch_in_action ...` (the `pia` command) and capture its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pytorch_in_action", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def write_tree(root: Path, classes=("a", "b"), per_class: int = 6, size: int = 16) -> Path:
    """A tiny ImageNet-layout folder of random PNGs."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def require_tool(names: str | tuple[str, ...], what: str) -> str:
    """The path of an optional tool (`what` says what it adds), found on PATH.

    Without it the calling test is skipped with a one-line reason, except under `CI=true`, where `.ci/run`
    installs the tool, so its absence is a failure instead of a silent skip."""
    import shutil

    import pytest

    for name in (names,) if isinstance(names, str) else names:
        if path := shutil.which(name):
            return path
    first = names if isinstance(names, str) else names[0]
    reason = f"{first} not found: {what} (`apt-get install {first}`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI requires it")
    pytest.skip(reason)
