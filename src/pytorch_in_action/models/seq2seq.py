"""Encoder-decoder Transformer for translation, with greedy and beam decoding over a KV cache.

Embeddings (scaled by sqrt(d_model)) + sinusoidal positions -> `Transformer` (pre-LN by default) -> a linear
head tied to the target embedding. `share_embeddings` also ties the source embedding (one shared vocabulary).
Decoding goes through `pytorch_in_action.generation.generate` with a step function over the decoder's cache.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from pytorch_in_action.generation import generate
from pytorch_in_action.layers.embedding import PositionalEncoding, TokenEmbedding
from pytorch_in_action.layers.transformer import KVCache, Transformer

PAD_ID, BOS_ID, EOS_ID = 0, 2, 3  # the ids `data.translation_tokenizer` gives its special tokens


@dataclass
class Seq2SeqConfig:
    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 256
    n_head: int = 4
    num_encoder_layers: int = 3
    num_decoder_layers: int = 3
    dim_feedforward: int = 1024
    dropout: float = 0.1
    max_len: int = 256
    norm_first: bool = True
    share_embeddings: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Seq2SeqTransformer(nn.Module):
    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        if cfg.share_embeddings and cfg.src_vocab_size != cfg.tgt_vocab_size:
            raise ValueError("share_embeddings needs one shared vocabulary (equal vocab sizes)")
        self.cfg = cfg
        self.src_embed = TokenEmbedding(cfg.src_vocab_size, cfg.d_model, padding_idx=PAD_ID)
        self.tgt_embed = TokenEmbedding(cfg.tgt_vocab_size, cfg.d_model, padding_idx=PAD_ID)
        if cfg.share_embeddings:
            self.src_embed.embedding.weight = self.tgt_embed.embedding.weight
        self.pos = PositionalEncoding(cfg.d_model, cfg.dropout, cfg.max_len, batch_first=True)
        self.transformer = Transformer(cfg.d_model, cfg.n_head, cfg.num_encoder_layers, cfg.num_decoder_layers,
                                       cfg.dim_feedforward, cfg.dropout, batch_first=True, norm_first=cfg.norm_first)
        self.lm_head = nn.Linear(cfg.d_model, cfg.tgt_vocab_size, bias=False)
        self.lm_head.weight = self.tgt_embed.embedding.weight  # tied output projection
        self._init_weights()

    def _init_weights(self) -> None:
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embed" not in name:
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.tgt_embed.embedding.weight, std=self.cfg.d_model**-0.5)
        if not self.cfg.share_embeddings:
            nn.init.normal_(self.src_embed.embedding.weight, std=self.cfg.d_model**-0.5)
        with torch.no_grad():
            self.tgt_embed.embedding.weight[PAD_ID].zero_()
            self.src_embed.embedding.weight[PAD_ID].zero_()

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S) ids -> memory (B, S, d) and the key padding mask (B, S), True at padding."""
        src_pad = src == PAD_ID
        memory = self.transformer.encoder(self.pos(self.src_embed(src)), src_key_padding_mask=src_pad)
        return memory, src_pad

    def decode(self, tgt_in: Tensor, memory: Tensor, src_pad: Tensor) -> Tensor:
        """Teacher-forced decoder over the whole target prefix: (B, T) ids -> logits (B, T, V)."""
        T = tgt_in.size(1)
        causal = torch.ones(T, T, dtype=torch.bool, device=tgt_in.device).triu(1)  # True: blocked
        h = self.transformer.decoder(self.pos(self.tgt_embed(tgt_in)), memory, tgt_mask=causal,
                                     tgt_key_padding_mask=tgt_in == PAD_ID, memory_key_padding_mask=src_pad,
                                     tgt_is_causal=True)
        return self.lm_head(h)

    def forward(self, src: Tensor, tgt_in: Tensor) -> Tensor:
        memory, src_pad = self.encode(src)
        return self.decode(tgt_in, memory, src_pad)

    # -- incremental decoding ------------------------------------------------------------------------------
    def _step_cached(self, new_tokens: Tensor, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """Feed (N, t) new target tokens after the `cache["pos"]` already decoded; return last logits (N, V)."""
        pos = cache["pos"]
        x = self.pos(self.tgt_embed(new_tokens), offset=pos)
        h, cache["kv"] = self.transformer.decoder.forward_step(x, cache["memory"], cache["kv"],
                                                               memory_key_padding_mask=cache["src_pad"])
        cache["pos"] = pos + new_tokens.size(1)
        return self._no_specials(self.lm_head(h[:, -1])), cache

    def _step_full(self, new_tokens: Tensor, cache: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """The same step without a cache: re-run the decoder over the whole prefix (the slow reference)."""
        prefix = new_tokens if cache["prefix"] is None else torch.cat([cache["prefix"], new_tokens], 1)
        cache["prefix"] = prefix
        return self._no_specials(self.decode(prefix, cache["memory"], cache["src_pad"])[:, -1]), cache

    @staticmethod
    def _no_specials(logits: Tensor) -> Tensor:
        """Padding and BOS are never valid outputs: rule them out."""
        logits = logits.clone()
        logits[:, [PAD_ID, BOS_ID]] = float("-inf")
        return logits

    @staticmethod
    def _reorder(cache: dict[str, Any], index: Tensor) -> dict[str, Any]:
        def pick(v: Any) -> Any:
            if isinstance(v, KVCache):
                return v.reorder(index)
            if isinstance(v, Tensor):
                return v.index_select(0, index)
            if isinstance(v, (list, tuple)):
                return type(v)(pick(x) for x in v)
            if isinstance(v, dict):
                return {k: pick(x) for k, x in v.items()}
            return v

        return {k: (pick(v) if k != "pos" else v) for k, v in cache.items()}

    @torch.no_grad()
    def translate(self, src: Tensor, *, num_beams: int = 1, length_penalty: float = 1.0,
                  max_new_tokens: int | None = None, use_cache: bool = True) -> list[list[int]]:
        """Batched greedy (`num_beams=1`) or beam search; returns the generated ids of each row, EOS excluded."""
        memory, src_pad = self.encode(src)
        if max_new_tokens is None:  # targets rarely exceed twice the source length
            max_new_tokens = min(self.cfg.max_len - 1, 2 * src.size(1) + 10)
        cache: dict[str, Any] = {"memory": memory, "src_pad": src_pad}
        if use_cache:
            cache.update(kv=None, pos=0)
            step = self._step_cached
        else:
            cache.update(prefix=None)
            step = self._step_full
        bos = torch.full((src.size(0), 1), BOS_ID, dtype=torch.long, device=src.device)
        out = generate(step, bos, cache, max_new_tokens=max_new_tokens, num_beams=num_beams,
                       eos_token_id=EOS_ID, pad_token_id=PAD_ID, length_penalty=length_penalty,
                       reorder_cache=self._reorder)
        result = []
        for row in out[:, 1:].tolist():
            result.append(row[: row.index(EOS_ID)] if EOS_ID in row else [t for t in row if t != PAD_ID])
        return result
