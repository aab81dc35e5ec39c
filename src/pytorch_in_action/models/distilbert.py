"""DistilBERT (Sanh et al., 2019) from scratch: BERT's post-LN block, half the layers, no token types, no pooler.

The student of a distillation keeps BERT's architecture minus the segment embeddings and the pooler, so the
block below *is* `bert.BertBlock`. Positions are learned, or initialised with sinusoids when
`sinusoidal_pos_embds` is set. Weights load from Hugging Face through `convert_hf_distilbert`; outputs equal
`transformers.DistilBertModel` / `DistilBertForSequenceClassification`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action.models.bert import (
    BertBlock,
    EncoderConfig,
    EncoderOutput,
    _FromHF,
    extended_attention_mask,
    init_weights,
    rename_hf_encoder,
    sequence_classification_loss,
)


@dataclass
class DistilBertConfig(EncoderConfig):
    """DistilBERT hyper-parameters under the names of `EncoderConfig` (so `BertBlock` takes either); DistilBERT
    fixes `ln_eps` at 1e-12."""

    n_layer: int = 6
    sinusoidal_pos_embds: bool = False
    seq_classif_dropout: float = 0.2

    MODEL_TYPE: ClassVar[str] = "distilbert"
    NAME: ClassVar[str] = "DistilBERT"
    HF_NAMES: ClassVar[dict[str, str]] = {
        "dim": "d_model", "n_layers": "n_layer", "n_heads": "n_head", "hidden_dim": "d_ff", "activation": "act",
        "attention_dropout": "attn_dropout", "max_position_embeddings": "max_positions"}


def sinusoidal_positions(n_pos: int, dim: int) -> Tensor:
    """(n_pos, dim) table of Vaswani et al.: sin on even columns, cos on odd ones, wavelengths up to 10000*2pi."""
    pos = torch.arange(n_pos, dtype=torch.float64)[:, None]  # (n_pos, 1)
    j = torch.arange(dim, dtype=torch.float64)[None, :]  # (1, dim)
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)  # (n_pos, dim)
    table = torch.empty(n_pos, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()


class DistilBertEmbeddings(nn.Module):
    """Token + position embeddings (no token types), then LayerNorm and dropout."""

    def __init__(self, cfg: DistilBertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.ln = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: Tensor) -> Tensor:
        T = input_ids.size(1)
        if T > self.position.num_embeddings:
            raise ValueError(f"sequence of {T} tokens is longer than max_position_embeddings={self.position.num_embeddings}")
        x = self.word(input_ids) + self.position(torch.arange(T, device=input_ids.device))  # (B, T, C)
        return self.drop(self.ln(x))


_HF_DISTILBERT_RENAMES = [  # (regex on a "distilbert."-prefixed HF key, our key)
    (r"distilbert\.embeddings\.word_embeddings\.", "distilbert.embeddings.word."),
    (r"distilbert\.embeddings\.position_embeddings\.", "distilbert.embeddings.position."),
    (r"distilbert\.embeddings\.LayerNorm\.", "distilbert.embeddings.ln."),
    (r"distilbert\.transformer\.layer\.(\d+)\.attention\.out_lin\.", r"distilbert.layers.\1.attn.c_proj."),
    (r"distilbert\.transformer\.layer\.(\d+)\.sa_layer_norm\.", r"distilbert.layers.\1.ln_1."),
    (r"distilbert\.transformer\.layer\.(\d+)\.ffn\.lin1\.", r"distilbert.layers.\1.mlp.c_fc."),
    (r"distilbert\.transformer\.layer\.(\d+)\.ffn\.lin2\.", r"distilbert.layers.\1.mlp.c_proj."),
    (r"distilbert\.transformer\.layer\.(\d+)\.output_layer_norm\.", r"distilbert.layers.\1.ln_2."),
    (r"pre_classifier\.", "pre_classifier."),
    (r"classifier\.", "classifier."),
]
_QKV = re.compile(r"distilbert\.transformer\.layer\.(\d+)\.attention\.(q_lin|k_lin|v_lin)\.(weight|bias)$")
_HEADS = ("distilbert.", "pre_classifier.", "classifier.", "vocab_", "qa_outputs.", "dropout.")


def convert_hf_distilbert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """HF DistilBERT weights (base model or a task model) -> this file's names; q/k/v stacked into `c_attn`."""
    return rename_hf_encoder(hf_state_dict, "distilbert.", _HEADS, _HF_DISTILBERT_RENAMES, _QKV,
                             ("q_lin", "k_lin", "v_lin"))


class DistilBertModel(_FromHF, nn.Module):
    """The DistilBERT encoder: embeddings and n_layer BERT blocks; no pooler."""

    config_class = DistilBertConfig

    @staticmethod
    def convert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """`convert_hf_distilbert`, keeping the encoder's tensors without their "distilbert." prefix."""
        return {k[11:]: v for k, v in convert_hf_distilbert(hf_state_dict).items() if k.startswith("distilbert.")}

    def __init__(self, cfg: DistilBertConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = DistilBertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertBlock(cfg) for _ in range(cfg.n_layer))
        self.apply(init_weights)
        if cfg.sinusoidal_pos_embds:  # a fixed pattern to start from; it stays trainable, as in transformers 5
            with torch.no_grad():
                self.embeddings.position.weight.copy_(sinusoidal_positions(cfg.max_positions, cfg.d_model))

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                output_hidden_states: bool = False) -> EncoderOutput:
        mask = extended_attention_mask(attention_mask)
        x = self.embeddings(input_ids)  # (B, T, C)
        hidden = [x]
        for block in self.layers:
            x = block(x, mask)
            hidden.append(x)
        return EncoderOutput(last_hidden_state=x, hidden_states=tuple(hidden) if output_hidden_states else None)


class DistilBertForSequenceClassification(_FromHF, nn.Module):
    """DistilBERT + a two-layer head on the [CLS] position: Linear, ReLU, dropout, Linear (no tanh pooler)."""

    config_class = DistilBertConfig
    convert = staticmethod(convert_hf_distilbert)

    def __init__(self, cfg: DistilBertConfig):
        super().__init__()
        self.config = cfg
        self.distilbert = DistilBertModel(cfg)
        self.pre_classifier = nn.Linear(cfg.d_model, cfg.d_model)
        self.classifier = nn.Linear(cfg.d_model, cfg.num_labels)
        self.drop = nn.Dropout(cfg.seq_classif_dropout)
        self.pre_classifier.apply(init_weights)
        self.classifier.apply(init_weights)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, labels: Tensor | None = None,
                output_hidden_states: bool = False) -> EncoderOutput:
        out = self.distilbert(input_ids, attention_mask, output_hidden_states)
        h = F.relu(self.pre_classifier(out.last_hidden_state[:, 0]))  # (B, C)
        out.logits = self.classifier(self.drop(h))  # (B, num_labels)
        if labels is not None:
            out.loss = sequence_classification_loss(out.logits, labels, self.config.problem_type)
        return out

