"""scikit-learn's handwritten digits written out as an ImageNet-layout folder.

The trainer reads it with torchvision's ImageFolder exactly as it reads ImageNet, so the offline default
exercises the real-data path: `root/train/<class>/*.png` and `root/val/<class>/*.png`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from pytorch_in_action.data.cache import cache_dir

IMAGE_SIZE = 32  # the 8x8 originals, upsampled so that crops and torchvision models make sense
VAL_FRACTION = 0.2
SPLIT_SEED = 0


def _split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded train/val split of the sample indices."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, val = train_test_split(idx, test_size=VAL_FRACTION, stratify=labels, random_state=SPLIT_SEED)
    return np.sort(train), np.sort(val)


def materialize_digits(root: str | os.PathLike | None = None) -> Path:
    """Write the digits as PNG files under `root` (default: <cache>/digits) once; return the root.

    The tree is built in a temporary folder and renamed into place, so an interrupted run never leaves a
    half-written dataset behind.
    """
    from sklearn.datasets import load_digits

    root = Path(root) if root is not None else cache_dir() / "digits"
    if (root / "train").is_dir() and (root / "val").is_dir():
        return root
    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).round().astype(np.uint8)  # (N, 8, 8), values 0..16 -> 0..255
    labels = digits.target
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-", dir=root.parent))
    try:
        for split, indices in zip(("train", "val"), _split(labels)):
            for i in indices:
                folder = tmp / split / str(labels[i])
                folder.mkdir(parents=True, exist_ok=True)
                img = Image.fromarray(images[i], mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
                img.save(folder / f"{i:04d}.png")
        if root.exists():  # an incomplete tree from elsewhere: replace it
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root
