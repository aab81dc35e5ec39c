"""The model-agnostic decoding loop: warpers equal to transformers', greedy/beam/sampling on a toy bigram model
whose best sequences can be enumerated by brute force."""

import itertools

import pytest
import torch
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from pytorch_in_action.generation import generate, warp_logits

V = 5


def bigram(seed: int = 0, scale: float = 2.0) -> torch.Tensor:
    """log P(next | last) for a random bigram model, (V, V)."""
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(V, V, generator=g) * scale, dim=-1)


def bigram_step(table: torch.Tensor):
    """A step function whose cache counts how many tokens it has seen (to check the loop feeds them all)."""

    def step(new_tokens: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return table[new_tokens[:, -1]], cache + new_tokens.size(1)

    return step


def reorder(cache: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return cache[index]


def test_warpers_equal_transformers():
    torch.manual_seed(0)
    scores = torch.randn(4, 50)
    ids = torch.zeros(4, 1, dtype=torch.long)
    for t, k, p in ((0.7, None, None), (1.0, 7, None), (1.0, None, 0.8), (1.3, 10, 0.6), (1.0, None, 0.0)):
        ref = scores.clone()
        if t != 1.0:
            ref = TemperatureLogitsWarper(t)(ids, ref)
        if k is not None:
            ref = TopKLogitsWarper(k)(ids, ref)
        if p is not None:
            ref = TopPLogitsWarper(p)(ids, ref)
        torch.testing.assert_close(warp_logits(scores, t, k, p), ref, rtol=0, atol=0)


def test_top_p_keeps_the_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = warp_logits(probs.log(), top_p=0.75).isfinite()
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.75 <= 0.5 + 0.3
    assert warp_logits(probs.log(), top_k=1).isfinite().sum() == 1


def test_bad_arguments_are_clear_value_errors():
    step, cache = bigram_step(bigram()), torch.zeros(1, dtype=torch.long)
    prompt = torch.tensor([[0]])
    for kw, message in ((dict(num_beams=0), "num_beams must be >= 1"), (dict(top_k=-1), "top_k must be >= 0"),
                        (dict(top_p=1.5), r"top_p must be in \[0, 1\]"), (dict(max_new_tokens=0), "max_new_tokens")):
        with pytest.raises(ValueError, match=message):
            generate(step, prompt, cache, **{"max_new_tokens": 2, **kw})
    with pytest.raises(ValueError, match=r"input_ids must be \(batch, length\), got shape \(3,\)"):
        generate(step, torch.tensor([0, 1, 2]), cache, max_new_tokens=2)


def test_greedy_follows_the_argmax_chain_and_pads_after_eos():
    table = bigram(1)
    prompt = torch.tensor([[0], [3]])
    out = generate(bigram_step(table), prompt, torch.zeros(2, dtype=torch.long), max_new_tokens=6)
    for row in out:
        for a, b in itertools.pairwise(row.tolist()):
            assert b == int(table[a].argmax())
    eos = int(table[0].argmax())  # row 0 reaches it at once
    out = generate(bigram_step(table), prompt, torch.zeros(2, dtype=torch.long), max_new_tokens=6,
                   eos_token_id=eos, pad_token_id=4)
    first = out[0, 1:].tolist()
    assert first[0] == eos and set(first[1:]) <= {4}


def test_beam_search_with_enough_beams_finds_the_best_sequence():
    """With num_beams >= V ** (steps - 1) and no EOS, beam search is exhaustive: it must return the most
    probable continuation, found here by enumerating all V ** steps of them."""
    table, steps = bigram(2, scale=1.0), 3
    for start in range(V):
        best = max(itertools.product(range(V), repeat=steps),
                   key=lambda s: sum(float(table[a, b]) for a, b in itertools.pairwise((start, *s))))
        out = generate(bigram_step(table), torch.tensor([[start]]), torch.zeros(1, dtype=torch.long),
                       max_new_tokens=steps, num_beams=V ** (steps - 1), reorder_cache=reorder)
        assert out[0, 1:].tolist() == list(best)


def test_beam_search_length_penalty_prefers_what_it_should():
    """Token 1 is EOS. From token 0, stopping at once is likely (score log 0.6 over 1 token), while going on
    through token 2 costs log 0.4 then nothing: long hypotheses win when the penalty rewards length."""
    p = torch.full((V, V), 1e-9)
    p[0, 1], p[0, 2] = 0.6, 0.4
    p[2, 2] = 1.0 - 4e-9
    table = p.log()
    run = dict(max_new_tokens=4, num_beams=2, eos_token_id=1, pad_token_id=0, reorder_cache=reorder)
    short = generate(bigram_step(table), torch.tensor([[0]]), torch.zeros(1), length_penalty=1.0, **run)
    long = generate(bigram_step(table), torch.tensor([[0]]), torch.zeros(1), length_penalty=1.0,
                    early_stopping=False, **{**run, "max_new_tokens": 6})
    assert short.tolist() == [[0, 2, 2, 2, 2]]  # log(0.4)/4 > log(0.6)/1
    assert long.tolist() == [[0, 2, 2, 2, 2, 2, 2]]
    eager = generate(bigram_step(table), torch.tensor([[0]]), torch.zeros(1), length_penalty=0.0, **run)
    assert eager.tolist() == [[0, 1]]  # no length normalisation: log 0.6 > log 0.4


def test_sampling_is_reproducible_with_a_generator_and_respects_top_k():
    table = bigram(3, scale=0.5)
    prompt = torch.zeros(64, 1, dtype=torch.long)

    def run(seed: int) -> torch.Tensor:
        return generate(bigram_step(table), prompt, torch.zeros(64), max_new_tokens=8, do_sample=True, top_k=2,
                        generator=torch.Generator().manual_seed(seed))

    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    top2 = table.topk(2, dim=-1).indices
    for row in a:
        for x, y in itertools.pairwise(row.tolist()):
            assert y in top2[x].tolist()


def test_the_loop_feeds_every_token_to_the_step_function():
    table = bigram(4)
    seen = []

    def step(new_tokens: torch.Tensor, cache: int) -> tuple[torch.Tensor, int]:
        seen.append(new_tokens.shape)
        return table[new_tokens[:, -1]], cache + new_tokens.size(1)

    generate(step, torch.zeros(2, 3, dtype=torch.long), 0, max_new_tokens=4)
    assert seen == [torch.Size([2, 3])] + [torch.Size([2, 1])] * 3  # prefill, then one token per step
