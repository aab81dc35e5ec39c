"""ImageNet-layout folders (`train/<class>/*`, `val/<class>/*`) read with torchvision's ImageFolder.

Layout problems are reported before training starts, one line each. An unreadable image stops the run by
default with its path named; `skip_bad=True` scans every file first and drops (and counts) unreadable ones.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

from pytorch_in_action.errors import PiaError


class BadImageError(PiaError):
    """An image file that PIL cannot decode."""


def load_rgb(path: str) -> Image.Image:
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise BadImageError(f"cannot read image {path} ({type(err).__name__}); "
                            "fix or remove it, or pass --skip-bad-images") from None


def _image_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS]


def check_layout(root: Path, splits: tuple[str, ...] = ("train", "val")) -> list[str]:
    """Validate `root/<split>` for each of `splits` (train/ and val/ by default); return the class names. Raises
    PiaError naming the problem."""
    if not root.exists():
        raise PiaError(f"data folder not found: {root}")
    if not root.is_dir():
        raise PiaError(f"--data must be a folder with {' and '.join(f'{s}/' for s in splits)} inside: {root}")
    classes: dict[str, list[str]] = {}
    for split in splits:
        folder = root / split
        if not folder.is_dir():
            raise PiaError(f"no {split}/ folder in {root} (expected {root}/{split}/<class>/<image>)")
        names = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not names:
            raise PiaError(f"{folder} has no class folders (expected {folder}/<class>/<image>)")
        for name in names:
            if not _image_files(folder / name):
                raise PiaError(f"class folder {folder / name} has no image files ({', '.join(IMG_EXTENSIONS[:4])}...)")
        classes[split] = names
    first, *others = (classes[s] for s in splits)
    for split, names in zip(splits[1:], others):
        if names != first:
            only = sorted(set(first) ^ set(names))
            raise PiaError(f"{splits[0]}/ and {split}/ have different classes in {root}: {', '.join(only[:5])}")
    return first


def image_folder(folder: Path, skip_bad: bool = False) -> ImageFolder:
    """ImageFolder with a loader that names the file it cannot read; optionally drop unreadable files first."""
    ds = ImageFolder(str(folder), loader=load_rgb)
    if skip_bad:
        good = []
        for path, target in ds.samples:
            try:
                with Image.open(path) as img:
                    img.verify()
                good.append((path, target))
            except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
                pass
        if len(good) < len(ds.samples):
            warnings.warn(f"skipped {len(ds.samples) - len(good)} unreadable image(s) in {folder}", stacklevel=2)
        ds.samples = ds.imgs = good
        ds.targets = [t for _, t in good]
    return ds


def first_image_size(ds: ImageFolder) -> tuple[int, int]:
    """(width, height) of the first image: used to pick transforms suited to the dataset's resolution."""
    with Image.open(ds.samples[0][0]) as img:
        return img.size
