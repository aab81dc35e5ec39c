"""Read a local Hugging Face checkpoint folder (config.json + model.safetensors or pytorch_model.bin).

Shared by every model in `pytorch_in_action.models` that loads HF weights. It reads files and loads tensors; each model
converts the returned state dict to its own parameter names with its own small conversion function.

    config, state_dict = load_hf_folder("path/to/folder")   # dict, {name: tensor}
    sd = strip_prefix(state_dict, "bert.")                   # drop a task-model prefix where present
    load_converted(model, my_convert(sd))                    # strict on missing tensors, ignores extra heads
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pytorch_in_action.errors import PiaError, torch_load_failure

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def load_hf_config(path: str | Path) -> dict:
    """The parsed `config.json` of a local HF checkpoint folder (PiaError when it is missing or broken)."""
    file = Path(path) / "config.json"
    if not file.is_file():
        raise PiaError(f"no config.json in {path}: not a Hugging Face checkpoint folder")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PiaError(f"{file} is not valid JSON: {err}") from None


def load_hf_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a local HF checkpoint folder, on CPU, from model.safetensors or pytorch_model.bin.

    Single files only (no sharded `*.index.json` checkpoints); `.bin` files load with `weights_only=True`.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise PiaError(f"checkpoint folder not found: {path}")
    for name in WEIGHT_FILES:
        file = folder / name
        if not file.is_file():
            continue
        try:
            if name.endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(file), device="cpu")
            return torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:  # corrupt or foreign file: one clear line
            reason = torch_load_failure(err) if name.endswith(".bin") else (str(err).strip() or repr(err)).splitlines()[0]
            raise PiaError(f"cannot read weights from {file}: {reason}") from None
    raise PiaError(f"no {' or '.join(WEIGHT_FILES)} in {path}")


def weights_error(path: str | Path, err: Exception) -> PiaError:
    """One line for a `from_pretrained(path)` of Hugging Face that failed: when `path` is a local folder with a
    weight file, the file and the reason it does not load (read again here, where the reasons are one line: a
    pickle the weights-only loader refuses, a file cut short); otherwise the first line of `err`."""
    folder = Path(path)
    if folder.is_dir() and any((folder / name).is_file() for name in WEIGHT_FILES):
        try:
            load_hf_state_dict(folder)
        except PiaError as reason:
            return reason
    first = (str(err).strip() or type(err).__name__).splitlines()[0]
    return PiaError(f"cannot load the weights of {path}: {first}")


def load_hf_folder(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config dict, state dict) of a local HF checkpoint folder."""
    return load_hf_config(path), load_hf_state_dict(path)


def strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove `prefix` from the keys that start with it (e.g. "bert." of BertForMaskedLM); other keys stay."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def load_converted(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load an already converted state dict into `model`: every model tensor must be there (PiaError naming the
    missing ones otherwise); extra tensors (heads this model does not have, e.g. BERT's NSP head) are ignored."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    if missing:
        shown = ", ".join(missing[:4]) + (f" (+{len(missing) - 4} more)" if len(missing) > 4 else "")
        raise PiaError(f"{source} lacks weights for {type(model).__name__}: {shown}")
    bad = [k for k in expected if state_dict[k].shape != expected[k].shape]
    if bad:
        k = bad[0]
        raise PiaError(f"{source}: {k} has shape {tuple(state_dict[k].shape)}, {type(model).__name__} "
                       f"expects {tuple(expected[k].shape)}")
    model.load_state_dict({k: state_dict[k] for k in expected}, strict=True)
