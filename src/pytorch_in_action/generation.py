"""Model-agnostic autoregressive decoding: greedy, sampling (temperature, top-k, top-p) and beam search.

A model plugs in through two small callables:

* ``step_fn(new_tokens, cache) -> (logits, cache)``: feed ``new_tokens`` (N, t) after what ``cache`` already
  holds and return the logits of the *last* position, shape (N, V), and the updated cache. The first call
  receives the whole prompt (the "prefill"), every later call one token per row.
* ``reorder_cache(cache, index) -> cache``: keep/duplicate cache rows, ``new_row[i] = old_row[index[i]]``.
  Beam search uses it once to expand each prompt into ``num_beams`` rows and then after every step to follow
  the surviving beams. Only needed when ``num_beams > 1``.

The cache is opaque here (a preallocated KV buffer, encoder states, an attention mask...), so GPT-2, T5 and
the encoder-decoder Transformer of the translation recipe share this file. The semantics follow Hugging Face
``generate()`` (same length penalty, same beam bookkeeping, ``early_stopping`` False or True), so greedy and
beam search give the same tokens as ``transformers`` for the same model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]
ReorderFn = Callable[[Any, Tensor], Any]

_NEG = -1.0e9  # "impossible" score for beam bookkeeping, as in transformers


def warp_logits(scores: Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None) -> Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering; removed entries become -inf.

    Works on logits or log-probabilities (N, V): both are shifted by a constant per row, which none of the
    three filters sees.
    """
    if temperature != 1.0:
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        scores = scores / temperature
    if top_k is not None and 0 < top_k < scores.size(-1):
        kth = torch.topk(scores, top_k, dim=-1).values[..., -1:]  # (N, 1) the k-th largest score
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
        probs = sorted_scores.softmax(dim=-1)
        mass_before = probs.cumsum(dim=-1) - probs  # probability of all better tokens
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False  # the best token always survives, even for top_p = 0 (as in transformers)
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def check_prompt(input_ids: Tensor) -> None:
    """Prompts are (batch, length) token ids: a clear error for anything else, before a model reads them."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")


def generate(step_fn: StepFn, input_ids: Tensor, cache: Any, *, max_new_tokens: int, do_sample: bool = False,
             num_beams: int = 1, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             eos_token_id: int | None = None, pad_token_id: int | None = None, length_penalty: float = 1.0,
             early_stopping: bool = False, generator: torch.Generator | None = None,
             reorder_cache: ReorderFn | None = None) -> Tensor:
    """Decode up to `max_new_tokens` after `input_ids` (B, P); returns (B, P + generated) like HF `generate()`.

    Finished rows are filled with `pad_token_id` (defaults to `eos_token_id`). Sampling draws from
    `generator` (or the global RNG), so the same seed gives the same tokens.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    check_prompt(input_ids)
    if num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 or None: off), got {top_k}")
    if top_p is not None and not 0.0 <= top_p <= 1.0:
        raise ValueError(f"top_p must be in [0, 1], got {top_p}")
    if pad_token_id is None:
        pad_token_id = eos_token_id if eos_token_id is not None else 0
    if num_beams == 1:
        return _sample(step_fn, input_ids, cache, max_new_tokens, do_sample, temperature, top_k, top_p,
                       eos_token_id, pad_token_id, generator)
    if reorder_cache is None:
        raise ValueError("beam search needs a reorder_cache function")
    return _beam_search(step_fn, reorder_cache, input_ids, cache, max_new_tokens, num_beams, do_sample,
                        temperature, top_k, top_p, eos_token_id, pad_token_id, length_penalty, early_stopping,
                        generator)


def _sample(step_fn: StepFn, input_ids: Tensor, cache: Any, max_new_tokens: int, do_sample: bool,
            temperature: float, top_k: int | None, top_p: float | None, eos_token_id: int | None,
            pad_token_id: int, generator: torch.Generator | None) -> Tensor:
    """Greedy (argmax) or ancestral sampling, one token per row and step."""
    B = input_ids.size(0)
    out = input_ids.new_full((B, max_new_tokens), pad_token_id)  # generated tokens, preallocated
    unfinished = torch.ones(B, dtype=torch.bool, device=input_ids.device)
    logits, cache = step_fn(input_ids, cache)
    n = 0
    while True:
        if do_sample:
            probs = warp_logits(logits.float(), temperature, top_k, top_p).softmax(dim=-1)
            next_tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            next_tok = logits.argmax(dim=-1)
        if eos_token_id is not None:
            next_tok = torch.where(unfinished, next_tok, pad_token_id)
            unfinished &= next_tok != eos_token_id
        out[:, n] = next_tok
        n += 1
        if n == max_new_tokens or (eos_token_id is not None and not unfinished.any()):
            break
        logits, cache = step_fn(next_tok[:, None], cache)
    return torch.cat([input_ids, out[:, :n]], dim=1)


def _beam_search(step_fn: StepFn, reorder_cache: ReorderFn, input_ids: Tensor, cache: Any, max_new_tokens: int,
                 num_beams: int, do_sample: bool, temperature: float, top_k: int | None, top_p: float | None,
                 eos_token_id: int | None, pad_token_id: int, length_penalty: float, early_stopping: bool,
                 generator: torch.Generator | None) -> Tensor:
    """Beam search with HF's bookkeeping: 2*num_beams candidates per step, EOS (or the length limit) ends a
    hypothesis, finished hypotheses scored sum(log p) / generated_length ** length_penalty."""
    B, P = input_ids.shape
    nb, k = num_beams, 2 * num_beams
    dev = input_ids.device
    logits, cache = step_fn(input_ids, cache)
    expand = torch.arange(B, device=dev).repeat_interleave(nb)  # (B*nb,) row b*nb+j comes from prompt b
    cache = reorder_cache(cache, expand)
    logits = logits[expand]

    running = input_ids[expand].view(B, nb, P)  # (B, nb, L) live hypotheses
    running_scores = torch.zeros(B, nb, device=dev)
    running_scores[:, 1:] = _NEG  # all beams start identical: only beam 0 may expand at the first step
    finished = input_ids.new_full((B, nb, P + max_new_tokens), pad_token_id)  # best finished hypotheses
    finished_scores = torch.full((B, nb), _NEG, device=dev)
    finished_len = torch.zeros(B, nb, dtype=torch.long, device=dev)
    is_finished = torch.zeros(B, nb, dtype=torch.bool, device=dev)
    done = torch.zeros(B, dtype=torch.bool, device=dev)  # no finished hypothesis can change any more
    top_rank = torch.arange(k, device=dev) < nb  # only the nb best candidates may finish

    for step in range(max_new_tokens):
        gen_len = step + 1
        log_probs = F.log_softmax(logits.float(), dim=-1)  # (B*nb, V)
        if do_sample:
            log_probs = warp_logits(log_probs, temperature, top_k, top_p)
        V = log_probs.size(-1)
        cand = (log_probs.view(B, nb, V) + running_scores[..., None]).view(B, nb * V)
        if do_sample:
            idx = torch.multinomial(cand.softmax(dim=-1), k, generator=generator)
            scores, order = cand.gather(1, idx).sort(dim=-1, descending=True)
            idx = idx.gather(1, order)
        else:
            scores, idx = torch.topk(cand, k, dim=-1)  # (B, k) best continuations over all beams
        beam, tok = idx // V, idx % V
        seqs = torch.cat([running.gather(1, beam[..., None].expand(-1, -1, running.size(2))), tok[..., None]], 2)

        last = step == max_new_tokens - 1
        ends = (tok == eos_token_id) if eos_token_id is not None else torch.zeros_like(tok, dtype=torch.bool)
        ends = ends | last  # (B, k) candidates that end here

        # finished hypotheses: merge the new ones into the nb best so far
        can_add = ends & top_rank & ~done[:, None]
        if early_stopping:
            can_add &= ~is_finished.all(dim=1, keepdim=True)
        new_scores = torch.where(can_add, scores / gen_len**length_penalty, _NEG)
        pad = seqs.new_full((B, k, finished.size(2) - seqs.size(2)), pad_token_id)
        all_seqs = torch.cat([finished, torch.cat([seqs, pad], 2)], 1)
        all_scores = torch.cat([finished_scores, new_scores], 1)
        all_len = torch.cat([finished_len, torch.full_like(tok, gen_len)], 1)
        all_fin = torch.cat([is_finished, can_add], 1)
        keep = torch.topk(all_scores, nb, dim=-1).indices
        finished = all_seqs.gather(1, keep[..., None].expand(-1, -1, all_seqs.size(2)))
        finished_scores, finished_len, is_finished = (t.gather(1, keep) for t in (all_scores, all_len, all_fin))

        # live hypotheses: the nb best candidates that did not end
        live = torch.topk(scores + ends.float() * _NEG, nb, dim=-1).indices
        running_scores = (scores + ends.float() * _NEG).gather(1, live)
        running = seqs.gather(1, live[..., None].expand(-1, -1, seqs.size(2)))
        src_beam = beam.gather(1, live)  # (B, nb) which old beam each survivor extends

        full = is_finished.all(dim=1)
        best_possible = running_scores[:, 0] / gen_len**length_penalty
        done |= full & (best_possible <= finished_scores.min(dim=1).values)
        if early_stopping:
            done |= full
        if last or bool(done.all()):
            break
        rows = (src_beam + torch.arange(B, device=dev)[:, None] * nb).view(-1)  # (B*nb,) flat source rows
        cache = reorder_cache(cache, rows)
        logits, cache = step_fn(running[:, :, -1].reshape(-1, 1), cache)

    best = finished[:, 0]  # (B, P + max_new_tokens), sorted by score
    return best[:, : P + int(finished_len[:, 0].max())]
