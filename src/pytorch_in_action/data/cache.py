"""Where bundled datasets are materialised: $PIA_CACHE, else ~/.cache/pytorch_in_action."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("PIA_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pytorch_in_action")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
