"""BERT (Devlin et al., 2018) from scratch: embeddings, post-LN encoder blocks, pooler, MLM and classification heads.

One file, read top to bottom. Attention runs through `F.scaled_dot_product_attention` (the math is spelled out in
the bert_model notebook). Hugging Face checkpoints load through one conversion function, `convert_hf_bert`, and
every model returns the same tensors as its `transformers` twin (BertModel, BertForMaskedLM,
BertForSequenceClassification).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pytorch_in_action.errors import PiaError
from pytorch_in_action.layers.feedforward import hf_activation
from pytorch_in_action.models.hf_loading import load_converted, load_hf_folder


@dataclass
class EncoderConfig:
    """The hyper-parameters BERT and DistilBERT share, under one set of names (so `BertBlock` takes either);
    each model's `HF_NAMES` maps its Hugging Face names onto these."""

    vocab_size: int = 30522
    d_model: int = 768
    n_layer: int = 12
    n_head: int = 12
    d_ff: int = 3072
    act: str = "gelu"
    dropout: float = 0.1
    attn_dropout: float = 0.1
    max_positions: int = 512
    ln_eps: float = 1e-12
    pad_token_id: int = 0
    num_labels: int = 2
    problem_type: str | None = None  # None: inferred from labels, as in HF

    HF_NAMES: ClassVar[dict[str, str]] = {}
    MODEL_TYPE: ClassVar[str] = ""  # HF's `model_type`
    NAME: ClassVar[str] = ""  # for messages

    @classmethod
    def from_hf(cls, hf: Any) -> Any:
        """Build from an HF config object or its dict (config.json)."""
        d = dict(hf if isinstance(hf, dict) else hf.to_dict())
        if d.get("model_type", cls.MODEL_TYPE) != cls.MODEL_TYPE:
            raise PiaError(f"a {d['model_type']!r} checkpoint is not a {cls.NAME} checkpoint")
        cls.check_hf(d)
        if "num_labels" not in d and d.get("id2label"):
            d["num_labels"] = len(d["id2label"])
        names = {f.name for f in fields(cls)}
        kw = {cls.HF_NAMES.get(k, k): v for k, v in d.items() if cls.HF_NAMES.get(k, k) in names}
        if kw.get("pad_token_id") is None:
            kw.pop("pad_token_id", None)
        return cls(**kw)

    @classmethod
    def check_hf(cls, d: dict[str, Any]) -> None:
        """Refuse an HF config this implementation does not cover (PiaError)."""


@dataclass
class BertConfig(EncoderConfig):
    """BERT hyper-parameters; `from_hf` maps Hugging Face names (hidden_size, ...) onto these."""

    type_vocab_size: int = 2
    classifier_dropout: float | None = None  # None: use `dropout`

    MODEL_TYPE: ClassVar[str] = "bert"
    NAME: ClassVar[str] = "BERT"
    HF_NAMES: ClassVar[dict[str, str]] = {
        "hidden_size": "d_model", "num_hidden_layers": "n_layer", "num_attention_heads": "n_head",
        "intermediate_size": "d_ff", "hidden_act": "act", "hidden_dropout_prob": "dropout",
        "attention_probs_dropout_prob": "attn_dropout", "max_position_embeddings": "max_positions",
        "layer_norm_eps": "ln_eps"}

    @classmethod
    def check_hf(cls, d: dict[str, Any]) -> None:
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise PiaError(f"position_embedding_type={d['position_embedding_type']!r} is not supported (absolute only)")
        if d.get("is_decoder") or d.get("add_cross_attention"):
            raise PiaError("decoder BERT (is_decoder / add_cross_attention) is not supported: encoder only")


@dataclass
class EncoderOutput:
    """What the encoders return, under Hugging Face's names; fields a model does not produce stay None."""

    last_hidden_state: Tensor | None = None  # (B, T, C)
    pooler_output: Tensor | None = None  # (B, C)
    logits: Tensor | None = None  # (B, T, V) for MLM, (B, num_labels) for classification
    loss: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None  # embeddings output + every block's output


def extended_attention_mask(attention_mask: Tensor | None) -> Tensor | None:
    """(B, T) with 1 = token, 0 = padding  ->  (B, 1, 1, T) boolean mask (True = may be attended to).

    Broadcast over heads and query positions, it stops every query from attending to padding keys; the classic
    additive form (0 or a very negative number added to the scores) is equivalent. None when nothing is padded,
    which lets SDPA pick its fastest kernel.
    """
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask[:, None, None, :].bool()  # (B, 1, 1, T)


class BertEmbeddings(nn.Module):
    """Token + segment (token type) + learned absolute position embeddings, then LayerNorm and dropout."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_token_id)
        self.position = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.d_model)
        self.ln = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        T = input_ids.size(1)
        if T > self.position.num_embeddings:
            raise ValueError(f"sequence of {T} tokens is longer than max_position_embeddings={self.position.num_embeddings}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        pos = torch.arange(T, device=input_ids.device)
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(pos)  # (B, T, C)
        return self.drop(self.ln(x))


class BertSelfAttention(nn.Module):
    """Multi-head self-attention: one fused q/k/v projection, SDPA, output projection."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        if cfg.d_model % cfg.n_head:
            raise ValueError(f"d_model={cfg.d_model} is not a multiple of n_head={cfg.n_head}")
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model)  # [query; key; value] stacked on the output axis
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.attn_dropout = cfg.attn_dropout

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        p = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
        return self.c_proj(y)


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear(C -> d_ff), activation, Linear(d_ff -> C)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.d_model, cfg.d_ff)
        self.act = hf_activation(cfg.act)
        self.act_ = hf_activation(cfg.act, inplace=True)
        self.c_proj = nn.Linear(cfg.d_ff, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c_fc(x)  # (B, T, d_ff): the largest activation of the model
        # without autograd the activation overwrites the product's fresh output instead of allocating another
        return self.c_proj(self.act(h) if h.requires_grad else self.act_(h))


def residual(y: Tensor, x: Tensor) -> Tensor:
    """x + y, summed into y when the dtypes agree: y is the fresh output of a projection or dropout, which no
    backward pass needs, so one (B, T, C) buffer less per sum. Under autocast y is bf16 and x float32: a new tensor.
    """
    return y.add_(x) if y.dtype == torch.promote_types(y.dtype, x.dtype) else x + y


class BertBlock(nn.Module):
    """Post-LN encoder block: x = LN(x + Drop(Attn(x))); x = LN(x + Drop(FFN(x))). Normalise after the residual sum."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attn = BertSelfAttention(cfg)
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.mlp = FeedForward(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.ln_1(residual(self.drop(self.attn(x, mask)), x))
        return self.ln_2(residual(self.drop(self.mlp(x)), x))


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, zero padding embedding, LayerNorm = identity."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=std)
        if module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class _FromHF:
    """`from_pretrained(folder)` and `from_hf(model)` for every BERT-family class below."""

    config_class: type = BertConfig

    @staticmethod
    def convert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        raise NotImplementedError

    @classmethod
    def _build(cls, cfg: Any, sd: dict[str, Tensor]) -> nn.Module:
        return cls(cfg)

    @classmethod
    def from_hf_state_dict(cls, hf_config: Any, hf_state_dict: dict[str, Tensor], source: str = "checkpoint"):
        """Build the model (in eval mode, like HF's) from an HF config (object or dict) and an HF state dict."""
        cfg = cls.config_class.from_hf(hf_config)
        sd = cls.convert(hf_state_dict)
        model = cls._build(cfg, sd)
        floats = [t.dtype for t in sd.values() if t.is_floating_point()]
        if floats:  # keep the checkpoint's precision (float64 test models stay float64, bf16 stays bf16)
            model.to(max(set(floats), key=floats.count))
        load_converted(model, sd, source)
        return model.eval()

    @classmethod
    def from_pretrained(cls, path: str | Path):
        """Load a local Hugging Face checkpoint folder (config.json + model.safetensors or pytorch_model.bin)."""
        config, state_dict = load_hf_folder(path)
        return cls.from_hf_state_dict(config, state_dict, source=str(path))

    @classmethod
    def from_hf(cls, hf_model: nn.Module):
        """Convert an in-memory `transformers` model (its config and weights are copied, not shared)."""
        sd = {k: v.detach().clone() for k, v in hf_model.state_dict().items()}
        return cls.from_hf_state_dict(hf_model.config, sd, source=type(hf_model).__name__)


_HF_BERT_RENAMES = [  # (regex on a "bert."-prefixed HF key, our key)
    (r"bert\.embeddings\.word_embeddings\.", "bert.embeddings.word."),
    (r"bert\.embeddings\.position_embeddings\.", "bert.embeddings.position."),
    (r"bert\.embeddings\.token_type_embeddings\.", "bert.embeddings.token_type."),
    (r"bert\.embeddings\.LayerNorm\.", "bert.embeddings.ln."),
    (r"bert\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"bert.layers.\1.attn.c_proj."),
    (r"bert\.encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"bert.layers.\1.ln_1."),
    (r"bert\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"bert.layers.\1.mlp.c_fc."),
    (r"bert\.encoder\.layer\.(\d+)\.output\.dense\.", r"bert.layers.\1.mlp.c_proj."),
    (r"bert\.encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"bert.layers.\1.ln_2."),
    (r"bert\.pooler\.dense\.", "bert.pooler."),
    (r"cls\.predictions\.transform\.dense\.", "mlm.dense."),
    (r"cls\.predictions\.transform\.LayerNorm\.", "mlm.ln."),
    (r"cls\.predictions\.bias$", "mlm.bias"),
    (r"classifier\.", "classifier."),
]
_QKV = re.compile(r"bert\.encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$")


def rename_hf_encoder(hf_state_dict: dict[str, Tensor], prefix: str, heads: tuple[str, ...],
                      renames: list[tuple[str, str]], qkv: re.Pattern, qkv_order: tuple[str, str, str]
                      ) -> dict[str, Tensor]:
    """The renaming BERT and DistilBERT share. Keys that start with none of `heads` (a bare base model) get
    `prefix`; the query/key/value tensors `qkv` matches (groups: layer, which one, weight or bias) are stacked in
    `qkv_order` into `{prefix}layers.{i}.attn.c_attn.{weight|bias}`; every other key takes the first matching
    (regex, replacement) of `renames`, and keys none matches are dropped."""
    out: dict[str, Tensor] = {}
    parts: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, t in hf_state_dict.items():
        if not key.startswith(heads):
            key = prefix + key
        if m := qkv.match(key):
            parts.setdefault((m[1], m[3]), {})[m[2]] = t
            continue
        for pattern, repl in renames:
            if re.match(pattern, key):
                out[re.sub(pattern, repl, key)] = t
                break
    for (i, kind), p in parts.items():
        out[f"{prefix}layers.{i}.attn.c_attn.{kind}"] = torch.cat([p[name] for name in qkv_order])
    return out


def convert_hf_bert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """HF BERT weights (BertModel or a task model, "bert." prefix or not) -> this file's names.

    query/key/value are stacked into one `c_attn`; the MLM decoder is dropped because it is tied to the word
    embeddings (checked); the NSP head and position-id buffers are dropped.
    """
    old_names = {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): t
                 for k, t in hf_state_dict.items()}  # TF-era checkpoints
    out = rename_hf_encoder(old_names, "bert.", ("bert.", "cls.", "classifier."), _HF_BERT_RENAMES, _QKV,
                            ("query", "key", "value"))
    decoder = hf_state_dict.get("cls.predictions.decoder.weight")
    if decoder is not None and "bert.embeddings.word.weight" in out:
        if not torch.equal(decoder, out["bert.embeddings.word.weight"]):
            raise PiaError("checkpoint has an MLM decoder not tied to the word embeddings: not supported")
    return out


class BertModel(_FromHF, nn.Module):
    """The BERT encoder: embeddings, n_layer post-LN blocks, and the tanh pooler over the [CLS] position."""

    @staticmethod
    def convert(hf_state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """`convert_hf_bert`, keeping the encoder's tensors without their "bert." prefix."""
        return {k[5:]: v for k, v in convert_hf_bert(hf_state_dict).items() if k.startswith("bert.")}

    def __init__(self, cfg: BertConfig, add_pooler: bool = True):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertBlock(cfg) for _ in range(cfg.n_layer))
        self.pooler = nn.Linear(cfg.d_model, cfg.d_model) if add_pooler else None
        self.apply(init_weights)

    @classmethod
    def _build(cls, cfg: BertConfig, sd: dict[str, Tensor]) -> BertModel:
        return cls(cfg, add_pooler="pooler.weight" in sd)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                output_hidden_states: bool = False) -> EncoderOutput:
        mask = extended_attention_mask(attention_mask)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        hidden = [x]
        for block in self.layers:
            x = block(x, mask)
            hidden.append(x)
        pooled = torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None  # (B, C)
        return EncoderOutput(last_hidden_state=x, pooler_output=pooled,
                             hidden_states=tuple(hidden) if output_hidden_states else None)


class BertMLMHead(nn.Module):
    """Transform (Linear, activation, LayerNorm); the vocabulary projection reuses the word embeddings + a bias."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.act = hf_activation(cfg.act)
        self.ln = nn.LayerNorm(cfg.d_model, eps=cfg.ln_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))

    def forward(self, h: Tensor, word_embeddings: Tensor) -> Tensor:
        h = self.ln(self.act(self.dense(h)))
        return F.linear(h, word_embeddings, self.bias)  # (B, T, V): decoder weight tied to the input embeddings


class BertForMaskedLM(_FromHF, nn.Module):
    """BERT + masked-language-model head; loss = cross-entropy over positions whose label is not -100."""

    convert = staticmethod(convert_hf_bert)

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg, add_pooler=False)
        self.mlm = BertMLMHead(cfg)
        self.mlm.apply(init_weights)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                labels: Tensor | None = None, output_hidden_states: bool = False) -> EncoderOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states)
        out.logits = self.mlm(out.last_hidden_state, self.bert.embeddings.word.weight)
        if labels is not None:
            out.loss = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
        return out


def sequence_classification_loss(logits: Tensor, labels: Tensor, problem_type: str | None = None) -> Tensor:
    """HF's rule: 1 label -> MSE regression; integer labels -> cross-entropy; float labels -> multi-label BCE."""
    num_labels = logits.size(-1)
    if problem_type is None:
        if num_labels == 1:
            problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem_type = "single_label_classification"
        else:
            problem_type = "multi_label_classification"
    if problem_type == "regression":
        return F.mse_loss(logits.squeeze(), labels.squeeze()) if num_labels == 1 else F.mse_loss(logits, labels)
    if problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    if problem_type == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels)
    raise ValueError(f"unknown problem_type {problem_type!r}")


class BertForSequenceClassification(_FromHF, nn.Module):
    """BERT + dropout + Linear on the pooled [CLS] vector."""

    convert = staticmethod(convert_hf_bert)

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.bert = BertModel(cfg, add_pooler=True)
        p = cfg.classifier_dropout if cfg.classifier_dropout is not None else cfg.dropout
        self.drop = nn.Dropout(p)
        self.classifier = nn.Linear(cfg.d_model, cfg.num_labels)
        init_weights(self.classifier)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None,
                labels: Tensor | None = None, output_hidden_states: bool = False) -> EncoderOutput:
        out = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states)
        out.logits = self.classifier(self.drop(out.pooler_output))  # (B, num_labels)
        if labels is not None:
            out.loss = sequence_classification_loss(out.logits, labels, self.config.problem_type)
        return out
