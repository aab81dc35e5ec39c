"""Loading Hugging Face weights into a from-scratch model: one `from_hf` and one `from_pretrained` for every class
whose config has `from_dict` and whose checkpoint names go through its `convert` (GPT-2, T5)."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor, nn

from pytorch_in_action.models.hf_loading import load_converted, load_hf_folder


class FromHF:
    """Mixin: set `config_class` (with a `from_dict` classmethod) and `convert` (HF state dict -> ours)."""

    config_class: type

    @staticmethod
    def convert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    @classmethod
    def from_hf(cls, hf_model: nn.Module):
        """Convert an in-memory `transformers` model of the same name."""
        model = cls(cls.config_class.from_dict(hf_model.config.to_dict()))
        load_converted(model, cls.convert(hf_model.state_dict()), f"transformers {cls.__name__}")
        return model

    @classmethod
    def from_pretrained(cls, path: str | Path):
        """Load a local Hugging Face folder (config.json + model.safetensors / pytorch_model.bin), in eval mode."""
        config, state_dict = load_hf_folder(path)
        model = cls(cls.config_class.from_dict(config))
        load_converted(model, cls.convert(state_dict), str(path))
        return model.eval()
