"""GPT-2 from scratch equals transformers' GPT2Model / GPT2LMHeadModel: forward, loss, gradients, generate()."""

import pytest
import torch
from transformers import GPT2Config as HFConfig
from transformers import GPT2LMHeadModel as HFLMHead
from transformers import GPT2Model as HFModel

from pytorch_in_action.models.gpt2 import GPT2LMHeadModel, GPT2Model, convert_hf_state_dict

F64 = dict(rtol=1e-10, atol=1e-10)
EOS, PAD = 2, 0

CONFIGS = [
    dict(n_layer=2, n_head=2, n_embd=16, activation_function="gelu_new"),
    dict(n_layer=3, n_head=4, n_embd=32, activation_function="relu", scale_attn_by_inverse_layer_idx=True,
         tie_word_embeddings=False),
    dict(n_layer=1, n_head=1, n_embd=8, n_inner=20, activation_function="gelu", scale_attn_weights=False),
]


def hf_lm(seed: int, vocab_size: int = 50, std: float | None = None, **cfg) -> HFLMHead:
    torch.manual_seed(seed)
    config = HFConfig(vocab_size=vocab_size, n_positions=48, bos_token_id=1, eos_token_id=EOS, pad_token_id=PAD,
                      attn_pdrop=0.0, embd_pdrop=0.0, resid_pdrop=0.0, **cfg)
    model = HFLMHead(config).eval()
    if std is not None:  # larger weights: peaky, varied predictions, so EOS and beam choices actually happen
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0.0, std)
    return model


def left_padded(batch: int, length: int, vocab: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    for b in range(1, batch):
        mask[b, : min(b, length - 1)] = 0  # row b has b padding tokens on the left
    return ids.masked_fill(mask == 0, PAD), mask


def after_eos(seq: torch.Tensor, start: int) -> torch.Tensor:
    """Blank out what follows the first EOS of each row. transformers' beam search fills finished rows with
    `pad_token_id or eos` (so EOS when pad is 0); ours fills with pad. The tokens that matter are compared."""
    seq = seq.clone()
    gen = seq[:, start:]
    is_eos = (gen == EOS).long()
    gen[(is_eos.cumsum(1) - is_eos) > 0] = -1
    return seq


def test_convert_hf_state_dict_transposes_conv1d_and_ties_head():
    hf = hf_lm(0, **CONFIGS[0])
    sd = hf.state_dict()
    out = convert_hf_state_dict(sd)
    for name in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
        key = f"transformer.h.0.{name}.weight"
        assert torch.equal(out[key], sd[key].t())
    sd.pop("lm_head.weight")  # saved tied checkpoints may omit the head
    sd["transformer.h.0.attn.bias"] = torch.ones(1)  # old checkpoints carry a causal-mask buffer
    bare = {k.removeprefix("transformer."): v for k, v in sd.items()}  # the original GPT-2 files have no prefix
    for src in (sd, bare):
        out = convert_hf_state_dict(src)
        assert "transformer.h.0.attn.bias" not in out
        assert out["lm_head.weight"] is out["transformer.wte.weight"]
    assert set(convert_hf_state_dict(bare, lm_head=False)) == set(GPT2Model(GPT2LMHeadModel.from_hf(hf).config)
                                                                  .state_dict())


@pytest.mark.parametrize("cfg", CONFIGS, ids=["gelu_new-tied", "relu-untied-layerscale", "gelu-1head-noscale"])
def test_forward_loss_and_gradients_match_hf(cfg):
    hf = hf_lm(1, **cfg).double()
    ours = GPT2LMHeadModel.from_hf(hf).double()
    ids = torch.randint(0, 50, (2, 11))
    mask = torch.ones_like(ids)
    labels = ids.masked_fill(torch.rand(ids.shape) < 0.2, -100)
    out = ours(ids, attention_mask=mask, labels=labels)
    ref = hf(ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    torch.testing.assert_close(out.last_hidden_state, ref.hidden_states[-1], **F64)
    torch.testing.assert_close(out.logits, ref.logits, **F64)
    # transformers computes the loss in float32 even for a float64 model, hence the looser tolerance
    torch.testing.assert_close(out.loss.float(), ref.loss, rtol=1e-6, atol=1e-6)
    # gradients through the whole network, from a float64 objective that touches every logit
    w = torch.randn_like(out.logits)
    (out.logits * w).sum().backward()
    (ref.logits * w).sum().backward()
    hf_params = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        g = hf_params[name].grad
        g = g.t() if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")) else g
        torch.testing.assert_close(p.grad, g, **F64, msg=name)


def test_base_model_and_left_padding_match_hf():
    hf_base = HFModel(hf_lm(2, **CONFIGS[1]).config).eval()
    ours = GPT2Model.from_hf(hf_base)
    ids, mask = left_padded(3, 9, 50)
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    out = ours(ids, attention_mask=mask, position_ids=pos)
    ref = hf_base(ids, attention_mask=mask, position_ids=pos).last_hidden_state
    real = mask.bool()  # padding positions are never read by real tokens; compare the real ones
    torch.testing.assert_close(out[real], ref[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed,cfg", [(3, CONFIGS[0]), (4, CONFIGS[1])])
def test_greedy_and_beam_search_equal_hf_generate_with_left_padding(seed, cfg):
    hf = hf_lm(seed, vocab_size=8, std=0.6, **cfg)
    ours = GPT2LMHeadModel.from_hf(hf).eval()
    ids, mask = left_padded(3, 6, 8, seed)
    runs = [dict(num_beams=1), dict(num_beams=3), dict(num_beams=2, length_penalty=2.0, early_stopping=True),
            dict(num_beams=3, length_penalty=-1.0)]
    for kw in runs:
        args = dict(max_new_tokens=10, eos_token_id=EOS, pad_token_id=PAD, **kw)
        mine = ours.generate(ids, attention_mask=mask, **args)
        ref = hf.generate(ids, attention_mask=mask, do_sample=False, **args)
        assert mine.shape == ref.shape, kw
        assert torch.equal(after_eos(mine, 6), after_eos(ref, 6)), kw
        if kw["num_beams"] == 1:
            assert torch.equal(mine, ref)  # greedy pads finished rows with pad, as HF does


def test_cached_and_uncached_decoding_give_the_same_tokens():
    ours = GPT2LMHeadModel.from_hf(hf_lm(5, vocab_size=8, std=0.6, **CONFIGS[0])).eval()
    ids, mask = left_padded(3, 5, 8, 5)
    for kw in (dict(), dict(num_beams=3), dict(do_sample=True, top_k=5, top_p=0.9, temperature=0.8)):
        a = ours.generate(ids, attention_mask=mask, max_new_tokens=9, eos_token_id=EOS,
                          generator=torch.Generator().manual_seed(0), **kw)
        b = ours.generate(ids, attention_mask=mask, max_new_tokens=9, eos_token_id=EOS, use_cache=False,
                          generator=torch.Generator().manual_seed(0), **kw)
        assert torch.equal(a, b), kw
    with pytest.raises(ValueError, match=r"input_ids must be \(batch, length\)"):
        ours.generate(ids[0], max_new_tokens=2)  # one prompt without its batch dimension


def test_sampling_is_reproducible_and_follows_hf_under_the_same_seed():
    hf = hf_lm(6, vocab_size=30, std=0.3, **CONFIGS[0])
    ours = GPT2LMHeadModel.from_hf(hf).eval()
    ids, mask = left_padded(2, 4, 30, 6)
    kw = dict(do_sample=True, temperature=0.7, top_k=12, top_p=0.9, max_new_tokens=12, eos_token_id=EOS)
    a = ours.generate(ids, attention_mask=mask, generator=torch.Generator().manual_seed(7), **kw)
    b = ours.generate(ids, attention_mask=mask, generator=torch.Generator().manual_seed(7), **kw)
    c = ours.generate(ids, attention_mask=mask, generator=torch.Generator().manual_seed(8), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(11)  # both draw from the global generator: same warpers, same multinomial calls
    mine = ours.generate(ids, attention_mask=mask, pad_token_id=PAD, **kw)
    torch.manual_seed(11)
    ref = hf.generate(ids, attention_mask=mask, pad_token_id=PAD, **kw)
    assert torch.equal(mine, ref)


def test_from_pretrained_reads_a_saved_hf_folder(tmp_path):
    hf = hf_lm(7, **CONFIGS[0])
    hf.save_pretrained(tmp_path)
    ours = GPT2LMHeadModel.from_pretrained(tmp_path)
    ids = torch.randint(0, 50, (2, 7))
    torch.testing.assert_close(ours(ids).logits, hf(ids).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_one_token_decoding_steps_give_the_logits_of_the_full_model(cfg):
    """The blocks' one-token step over the KV cache against rerunning the whole model on the sequence, step by
    step, with left padding (float64, so any difference beyond rounding would show)."""
    ours = GPT2LMHeadModel.from_hf(hf_lm(7, **cfg)).double().eval()
    ids, mask = left_padded(3, 5, 50, 7)
    cached, full = ours.new_cache(ids, mask, 9), ours.new_cache(ids, mask, 9)
    tokens = ids
    for _ in range(4):
        a, cached = ours.decode_step(tokens, cached)
        b, full = ours._step_uncached(tokens, full)
        torch.testing.assert_close(a, b, **F64)
        tokens = a.argmax(-1, keepdim=True)  # (B, 1)
    assert cached.length == 8
