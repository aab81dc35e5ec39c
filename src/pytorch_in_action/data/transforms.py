"""Train-time augmentation and eval-time preprocessing, chosen by image size.

Small images (at most 64 px, digits/CIFAR-like) keep their resolution: random crop with zero padding, no
flip by default (digits are not mirror-symmetric). Large images use the ImageNet recipe: RandomResizedCrop
and horizontal flip for training, resize to crop/0.875 and center crop for evaluation.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_MAX = 64


def _finish() -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def build_transforms(image_size: int, train: bool, hflip: bool | None = None) -> v2.Compose:
    """Transforms for a square model input of `image_size` pixels."""
    small = image_size <= SMALL_MAX
    flip = (not small) if hflip is None else hflip
    if small:
        ops = [v2.Resize((image_size, image_size), antialias=True)]
        if train:
            ops.append(v2.RandomCrop(image_size, padding=max(1, image_size // 8)))
    elif train:
        ops = [v2.RandomResizedCrop(image_size, antialias=True)]
    else:
        ops = [v2.Resize(round(image_size / 0.875), antialias=True), v2.CenterCrop(image_size)]
    if train and flip:
        ops.append(v2.RandomHorizontalFlip())
    return v2.Compose(ops + _finish())
