"""The native batch-1 decoding step (C++ kernel) computes the model's own step's logits and cache, and refuses what
it was not built for. Building the kernel needs a C++ compiler and ninja: without them these tests skip (fail under CI=true)."""

import pytest
import torch
from torch.testing import assert_close
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel as HFLMHead

from pytorch_in_action.fast import gpt2_native, native
from pytorch_in_action.fast.gpt2 import GPT2Decoder
from pytorch_in_action.models.gpt2 import GPT2LMHeadModel

F32 = dict(rtol=1e-5, atol=1e-5)  # float32, different summation order than torch's kernels


NATIVE_CONFIGS = [
    dict(n_layer=2, n_head=2, n_embd=16, activation_function="gelu_new"),
    dict(n_layer=3, n_head=4, n_embd=32, activation_function="relu", scale_attn_by_inverse_layer_idx=True,
         tie_word_embeddings=False),
    dict(n_layer=1, n_head=1, n_embd=8, n_inner=20, activation_function="gelu", scale_attn_weights=False),
    dict(n_layer=2, n_head=3, n_embd=24, n_inner=40, activation_function="swish"),
    dict(n_layer=1, n_head=2, n_embd=40, activation_function="silu", tie_word_embeddings=False),
    dict(n_layer=2, n_head=4, n_embd=64, activation_function="gelu_pytorch_tanh"),
]


def model_of(cfg: dict, seed: int = 3) -> GPT2LMHeadModel:
    """A tiny random GPT-2 (vocabulary 77, 48 positions) with weights large enough for varied predictions."""
    torch.manual_seed(seed)
    hf = HFLMHead(HFConfig(vocab_size=77, n_positions=48, attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0, **cfg))
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0.0, 0.3)
    return GPT2LMHeadModel.from_hf(hf).eval()


@pytest.mark.parametrize("cfg", NATIVE_CONFIGS, ids=lambda c: c["activation_function"])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "left-padded"])
def test_native_step_gives_the_eager_steps_logits_and_cache(cfg, padded, toolchain):
    """Step by step from a prompt: logits equal to the model's own cached step's, and the same keys and values written
    to the cache; a left-padded prompt's hidden slots stay hidden."""
    model = model_of(cfg)
    ids = torch.randint(3, 77, (1, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[0, 0, 1, 1, 1, 1]]) if padded else None
    with torch.inference_mode():
        eager, ours = model.new_cache(ids, mask, 12), model.new_cache(ids, mask, 12)
        logits, eager = model.decode_step(ids, eager)
        _, ours = model.decode_step(ids, ours)
        step = gpt2_native.NativeDecodeStep(model)
        bound = step.bind(ours.k, ours.v, None if ours.mask is None else ours.mask[0])
        for _ in range(5):
            token = logits.argmax(-1, keepdim=True)  # (1, 1)
            native = step(bound, int(token), int(ours.next_pos), ours.length)
            ours.length += 1
            ours.next_pos += 1
            logits, eager = model.decode_step(token, eager)
            assert_close(native, logits, **F32)
        for k, v, k_ref, v_ref in zip(ours.k, ours.v, eager.k, eager.v):
            assert_close(k[:, :, :eager.length], k_ref[:, :, :eager.length], **F32)
            assert_close(v[:, :, :eager.length], v_ref[:, :, :eager.length], **F32)


def test_blocks_packs_output_columns_in_groups_of_nr_padded_with_zeros():
    w = torch.randn(gpt2_native.NR + 5, 7)
    packed = gpt2_native.blocks(w)
    assert packed.shape == (2, 7, gpt2_native.NR)
    assert torch.equal(packed[1, :, 3], w[gpt2_native.NR + 3])
    assert torch.equal(packed[0].T, w[:gpt2_native.NR])
    assert not packed[1, :, 5:].any()


def test_supports_only_float32_cpu_batch_one_with_a_known_activation():
    model = model_of(NATIVE_CONFIGS[0])
    assert gpt2_native.supports(model, 1)
    assert not gpt2_native.supports(model, 2)
    assert not gpt2_native.supports(model_of(NATIVE_CONFIGS[0]).double(), 1)
    assert not gpt2_native.supports(model_of(dict(NATIVE_CONFIGS[0], activation_function="tanh")), 1)


def test_bind_and_call_refuse_a_wrong_cache_or_out_of_range_ids(toolchain):
    model = model_of(NATIVE_CONFIGS[0])
    step = gpt2_native.NativeDecodeStep(model)
    good = [torch.zeros(1, 2, 10, 8) for _ in range(2)]  # n_layer 2, n_head 2, head_dim 8
    with pytest.raises(ValueError, match=r"2 contiguous float32 CPU buffers each, shaped \(1, 2, max_len, 8\)"):
        step.bind(good[:1], good[:1])
    with pytest.raises(ValueError, match="shaped"):
        step.bind([torch.zeros(1, 2, 10, 8, dtype=torch.float64)] * 2, good)
    with pytest.raises(ValueError, match="shaped"):
        step.bind([torch.zeros(1, 2, 8, 10).transpose(2, 3)] * 2, good)
    with pytest.raises(ValueError, match=r"mask: a contiguous bool tensor of shape \(10,\)"):
        step.bind(good, good, torch.ones(9, dtype=torch.bool))
    bound = step.bind(good, good)
    for token, position, past in ((77, 0, 0), (0, 48, 0), (0, 0, 10), (-1, 0, 0)):
        with pytest.raises(ValueError, match="out of range"):
            step(bound, token, position, past)


def test_a_new_thread_count_needs_a_new_packing(toolchain):
    """Each thread streams its own share of the weights: the step refuses another thread count, and generate()
    repacks for it."""
    model = model_of(NATIVE_CONFIGS[1])
    fast = GPT2Decoder(model)
    prompt = torch.tensor([[5, 6, 7]])
    eager = model.generate(prompt, max_new_tokens=6)
    threads = torch.get_num_threads()
    assert torch.equal(fast.generate(prompt, max_new_tokens=6), eager)
    step = fast._native
    other = 1 if threads > 1 else 2
    try:
        torch.set_num_threads(other)
        bound = step.bind([torch.zeros(1, 4, 4, 8)] * 3, [torch.zeros(1, 4, 4, 8)] * 3)
        with pytest.raises(RuntimeError, match="thread count changed"):
            step(bound, 1, 0, 0)
        assert torch.equal(fast.generate(prompt, max_new_tokens=6), eager)
        assert fast._native.n_threads == other
    finally:
        torch.set_num_threads(threads)
    fast.release()  # the packed copy goes; the next call packs again
    assert fast._native is None
    assert torch.equal(fast.generate(prompt, max_new_tokens=6), eager)


def test_load_says_what_is_missing_when_the_kernel_cannot_be_built(monkeypatch, tmp_path):
    monkeypatch.setenv("PIA_CACHE", str(tmp_path))
    native.load.cache_clear()
    try:
        monkeypatch.setenv("CXX", "no-such-compiler-here")
        with pytest.raises(native.BuildError, match="needs a C\\+\\+ compiler: .no-such-compiler-here. was not"):
            native.load("gpt2_decode")
        monkeypatch.setenv("CXX", "false")  # a "compiler" that fails
        with pytest.raises(native.BuildError, match="building the native kernel 'gpt2_decode' with false failed"):
            native.load("gpt2_decode")
        assert not list((tmp_path / "native").rglob("*.so"))  # no half-written library left behind
    finally:
        native.load.cache_clear()
