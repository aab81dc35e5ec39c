"""Image models by name: the project's own small CNN and every torchvision classification architecture."""

from __future__ import annotations

import difflib
from functools import partial

import torchvision
from torch import nn

from pytorch_in_action.errors import PiaError
from pytorch_in_action.models.small_cnn import SmallCNN

OWN = {
    "small_cnn": SmallCNN,
    "small_cnn_gn": partial(SmallCNN, norm="group"),  # GroupNorm: batch-size independent
}


def available_archs() -> list[str]:
    return sorted(OWN) + sorted(torchvision.models.list_models(module=torchvision.models))


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the last Linear layer for one with `num_classes` outputs (for pretrained weights)."""
    name, last = None, None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear):
            name, last = n, m
    if last is None or last.out_features == num_classes:
        return
    parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
    setattr(parent, name.rsplit(".", 1)[-1], nn.Linear(last.in_features, num_classes))


def build_model(arch: str, num_classes: int, pretrained: bool = False, dropout: float | None = None) -> nn.Module:
    """`dropout` overrides the model's default where the architecture has a `dropout` argument."""
    kwargs = {} if dropout is None else {"dropout": dropout}
    if arch in OWN:
        if pretrained:
            raise PiaError(f"--pretrained has no weights for {arch}; it is for torchvision architectures")
        return OWN[arch](num_classes=num_classes, **kwargs)
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        close = difflib.get_close_matches(arch, available_archs(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise PiaError(f"unknown --arch {arch!r}{hint}")
    try:
        if pretrained:
            model = torchvision.models.get_model(arch, weights="DEFAULT", **kwargs)  # from the torch hub cache
            _replace_head(model, num_classes)
            return model
        return torchvision.models.get_model(arch, num_classes=num_classes, **kwargs)
    except TypeError as err:
        if kwargs:
            raise PiaError(f"--dropout is not an option of {arch}") from None
        raise err
