"""The fast GPT-2 decoder gives the tokens and logits of the model's own `generate`: the flat eager step over
packed products everywhere, and the native C++ step at batch 1 where a C++ compiler is installed (without one
those tests skip, except under CI=true)."""

import pytest
import torch
from torch.testing import assert_close
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel as HFLMHead

from pytorch_in_action.fast import GPT2Decoder, T5Decoder, cpu_decoder
from pytorch_in_action.fast.gpt2 import flat_step
from pytorch_in_action.models.gpt2 import GPT2LMHeadModel
from pytorch_in_action.models.t5 import T5Config, T5ForConditionalGeneration

EOS, PAD = 2, 0
F64 = dict(rtol=1e-10, atol=1e-10)
CONFIGS = [
    dict(n_layer=2, n_head=2, n_embd=16, activation_function="gelu_new"),
    dict(n_layer=3, n_head=4, n_embd=32, activation_function="relu", scale_attn_by_inverse_layer_idx=True,
         tie_word_embeddings=False),
]
# greedy, beams (expanded and reordered cache), sampling; a left-padded batch of 3 or one unpadded prompt
KINDS = [dict(), dict(num_beams=2), dict(do_sample=True, top_k=5, temperature=0.8), dict(batch_one=True)]


def model_of(cfg: dict, seed: int = 5, vocab_size: int = 8) -> GPT2LMHeadModel:
    """A tiny random GPT-2 with large weights: peaky, varied predictions, so EOS and beam choices happen."""
    torch.manual_seed(seed)
    hf = HFLMHead(HFConfig(vocab_size=vocab_size, n_positions=48, bos_token_id=1, eos_token_id=EOS,
                           pad_token_id=PAD, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0, **cfg))
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.6)
    return GPT2LMHeadModel.from_hf(hf).eval()


def prompts(kind: dict) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    kind = dict(kind)
    ids = torch.randint(3, 8, (3, 5), generator=torch.Generator().manual_seed(5))
    if kind.pop("batch_one", False):
        return ids[:1, -3:], None, kind
    mask = torch.ones_like(ids)
    mask[1, :1], mask[2, :2] = 0, 0  # rows 1 and 2 are left-padded
    return ids.masked_fill(mask == 0, PAD), mask, kind


def same_tokens(model: GPT2LMHeadModel, fast, kind: dict) -> None:
    ids, mask, kw = prompts(kind)
    common = dict(attention_mask=mask, max_new_tokens=9, eos_token_id=EOS, **kw)
    plain = model.generate(ids, generator=torch.Generator().manual_seed(0), **common)
    assert torch.equal(fast.generate(ids, generator=torch.Generator().manual_seed(0), **common), plain), kind


@pytest.mark.parametrize("cfg", CONFIGS, ids=["gelu_new", "relu-untied"])
@pytest.mark.parametrize("kind", KINDS, ids=["greedy", "beams", "sampling", "batch-1"])
def test_eager_fast_path_gives_the_models_tokens(cfg, kind):
    same_tokens(model := model_of(cfg), GPT2Decoder(model, native=False), kind)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["gelu_new", "relu-untied"])
def test_flat_step_gives_the_logits_and_cache_of_the_models_step(cfg):
    """Float64, left-padded: the flat one-token step writes the same keys and values and returns the same logits
    as the model's own blocks, step after step."""
    model = model_of(cfg, vocab_size=50).double()
    ids, mask, _ = prompts({})
    with torch.inference_mode():
        plain, flat = model.new_cache(ids, mask, 10), model.new_cache(ids, mask, 10)
        logits, plain = model.decode_step(ids, plain)
        _, flat = model.decode_step(ids, flat)
        for _ in range(4):
            token = logits.argmax(-1, keepdim=True)  # (B, 1)
            S = flat.length + 1
            layers = [(k[:, :, :S], v[:, :, :S]) for k, v in zip(flat.k, flat.v)]
            fast = flat_step(model, token, flat.next_pos, flat.length,
                             flat.mask[:, None, None, :S], layers)
            flat.length, flat.next_pos = S, flat.next_pos + 1
            logits, plain = model.decode_step(token, plain)
            assert_close(fast, logits, **F64)
        for k, v, k_ref, v_ref in zip(flat.k, flat.v, plain.k, plain.v):
            assert_close(k, k_ref, **F64)
            assert_close(v, v_ref, **F64)


@pytest.mark.parametrize("kind", KINDS, ids=["greedy", "beams", "sampling", "batch-1"])
def test_default_decoder_gives_the_models_tokens(kind, toolchain):
    """The default decoder: the native C++ step at batch 1, the flat step for batches and beams."""
    same_tokens(model := model_of(CONFIGS[0]), cpu_decoder(model), kind)


def test_native_batch_one_follows_its_own_and_changed_weights(toolchain):
    """At batch 1 the native step reads a packed copy of the weights: two models of one configuration must each
    decode with their own, and a model whose weights change after packing must decode with the new ones."""
    a, b = model_of(CONFIGS[0], seed=5), model_of(CONFIGS[0], seed=6)
    fast_a, fast_b = cpu_decoder(a), cpu_decoder(b)
    prompt = torch.tensor([[3, 4, 5, 6]])
    for model, fast in ((a, fast_a), (b, fast_b), (a, fast_a)):
        assert torch.equal(fast.generate(prompt, max_new_tokens=8), model.generate(prompt, max_new_tokens=8))
    assert not torch.equal(a.generate(prompt, max_new_tokens=8), b.generate(prompt, max_new_tokens=8))
    with torch.no_grad():
        a.lm_head.weight.copy_(b.lm_head.weight)  # tied: the embedding changes too
        a.transformer.h[0].mlp.c_fc.bias.add_(1.0)
    assert torch.equal(fast_a.generate(prompt, max_new_tokens=8), a.generate(prompt, max_new_tokens=8))


def test_cpu_decoder_picks_the_decoder_and_refuses_what_it_cannot_speed_up():
    gpt2 = model_of(CONFIGS[0])
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=30, d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                             num_heads=2))
    assert isinstance(cpu_decoder(gpt2), GPT2Decoder) and cpu_decoder(gpt2).native
    assert not cpu_decoder(gpt2, native=False).native
    assert isinstance(cpu_decoder(t5), T5Decoder)
    with pytest.raises(ValueError, match="T5 has no native decoding step"):
        cpu_decoder(t5, native=True)
    with pytest.raises(TypeError, match="not Linear"):
        cpu_decoder(torch.nn.Linear(2, 2))
    ids = torch.tensor([[3, 4]])
    uncached = GPT2Decoder(gpt2, native=False).generate(ids, max_new_tokens=3, use_cache=False)
    assert torch.equal(uncached, gpt2.generate(ids, max_new_tokens=3))
