"""PyTorch Lightning wrappers around the library's image classifier and ImageFolder data.

`ImageClassifier` (LightningModule), `ImageFolderDataModule` / `DigitsDataModule` (LightningDataModule),
`train_with_lightning` (Lightning from `pia image train`'s options) and `cli_main` (a LightningCLI).
Imported lazily so that `import pytorch_in_action.lightning` does not pull in Lightning until needed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DigitsDataModule", "ImageClassifier", "ImageFolderDataModule", "cli_main", "train_with_lightning"]

_WHERE = {
    "ImageClassifier": "module",
    "ImageFolderDataModule": "datamodule",
    "DigitsDataModule": "datamodule",
    "train_with_lightning": "fit",
    "cli_main": "cli",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
