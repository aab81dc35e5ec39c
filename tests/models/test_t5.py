"""T5 from scratch equals transformers' T5Model / T5ForConditionalGeneration: buckets, forward, loss, gradients,
shift_right and generate()."""

import pytest
import torch
from transformers import T5Config as HFConfig
from transformers import T5ForConditionalGeneration as HFT5
from transformers import T5Model as HFT5Model
from transformers.models.t5.modeling_t5 import T5Attention as HFT5Attention

from pytorch_in_action.models.t5 import (
    T5ForConditionalGeneration,
    T5LayerNorm,
    T5Model,
    convert_hf_state_dict,
    relative_position_bucket,
    shift_right,
)

F64 = dict(rtol=1e-10, atol=1e-10)
# transformers' T5LayerNorm computes the variance in float32 even in a float64 model (ours keeps float64),
# so a float64 comparison agrees to float32 rounding of that one statistic, not to 1e-10
T5_F64 = dict(rtol=1e-5, atol=1e-5)
EOS = 1

CONFIGS = [
    dict(feed_forward_proj="relu", tie_word_embeddings=True, relative_attention_num_buckets=8,
         relative_attention_max_distance=12, num_layers=2, num_decoder_layers=3, num_heads=4, d_kv=4),
    dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False, relative_attention_num_buckets=32,
         relative_attention_max_distance=128, num_layers=2, num_heads=2, d_kv=8),
    dict(feed_forward_proj="gated-gelu", tie_word_embeddings=True, relative_attention_num_buckets=6,
         relative_attention_max_distance=7, num_layers=1, num_heads=3, d_kv=5),
]
IDS = ["relu-tied-asymmetric", "gated-gelu-untied", "gated-gelu-tied-few-buckets"]


def hf_t5(seed: int, cfg: dict, vocab_size: int = 40, std: float | None = None, cls=HFT5):
    torch.manual_seed(seed)
    config = HFConfig(vocab_size=vocab_size, d_model=16, d_ff=24, dropout_rate=0.0, decoder_start_token_id=0, **cfg)
    model = cls(config).eval()
    with torch.no_grad():
        if std is not None:  # peaky predictions so that EOS and beam choices happen
            for p in model.parameters():
                p.normal_(0.0, std)
        if not cfg["tie_word_embeddings"] and cls is HFT5:
            # transformers 5 keeps the head tied in memory; give it its own weights, as a v1.1 checkpoint has
            model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight))
    return model


def test_relative_position_buckets_match_hf():
    rel = torch.arange(-300, 301)[None, :]
    for bidirectional in (True, False):
        for buckets, dist in ((32, 128), (8, 12), (6, 7), (16, 40)):
            ours = relative_position_bucket(rel, bidirectional, buckets, dist)
            ref = HFT5Attention._relative_position_bucket(rel, bidirectional, buckets, dist)
            assert torch.equal(ours, ref)
            assert int(ours.max()) < buckets


def test_rmsnorm_matches_hf_and_definition():
    from transformers.models.t5.modeling_t5 import T5LayerNorm as HFNorm

    x = torch.randn(3, 5, 16)
    ours, ref = T5LayerNorm(16, 1e-6), HFNorm(16, 1e-6)
    with torch.no_grad():
        ours.weight.normal_()
        ref.weight.copy_(ours.weight)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-6, atol=1e-6)
    x64 = x.double()
    rms = x64.pow(2).mean(-1, keepdim=True).add(1e-6).sqrt()
    torch.testing.assert_close(ours.double()(x64), ours.weight.double() * x64 / rms, **F64)


def test_shift_right_matches_hf():
    hf = hf_t5(0, CONFIGS[0])
    labels = torch.tensor([[5, 6, 7, 1], [8, 1, -100, -100]])
    assert torch.equal(shift_right(labels, 0, 0), hf._shift_right(labels))
    assert shift_right(labels, 0, 0).tolist() == [[0, 5, 6, 7], [0, 8, 1, 0]]


def test_convert_hf_state_dict_fills_tied_copies():
    hf = hf_t5(0, CONFIGS[0])
    saved = {k: v for k, v in hf.state_dict().items() if "embed_tokens" not in k and k != "lm_head.weight"}
    out = convert_hf_state_dict(saved)
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"):
        assert out[key] is saved["shared.weight"]


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_forward_loss_and_gradients_match_hf(cfg):
    hf = hf_t5(1, cfg).double()
    ours = T5ForConditionalGeneration.from_hf(hf).double()
    ids = torch.randint(2, 40, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # second source sentence is shorter
    labels = torch.randint(2, 40, (2, 6))
    labels[1, 4:] = -100
    out = ours(ids, attention_mask=mask, labels=labels)
    ref = hf(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
    torch.testing.assert_close(out.encoder_last_hidden_state, ref.encoder_last_hidden_state, **T5_F64)
    torch.testing.assert_close(out.last_hidden_state, ref.decoder_hidden_states[-1], **T5_F64)
    torch.testing.assert_close(out.logits, ref.logits, **T5_F64)
    torch.testing.assert_close(out.loss, ref.loss, **T5_F64)
    out.loss.backward()
    ref.loss.backward()
    hf_params = dict(hf.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, hf_params[name].grad, **T5_F64, msg=name)


def test_t5model_matches_hf_with_decoder_mask():
    hf = hf_t5(2, CONFIGS[1], cls=HFT5Model)
    ours = T5Model.from_hf(hf)
    ids, dec = torch.randint(2, 40, (2, 7)), torch.randint(2, 40, (2, 5))
    mask, dec_mask = torch.ones_like(ids), torch.ones_like(dec)
    mask[0, 5:] = 0
    dec_mask[1, 3:] = 0
    out = ours(ids, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask)
    ref = hf(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, decoder_attention_mask=dec_mask)
    torch.testing.assert_close(out.last_hidden_state, ref.last_hidden_state, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.encoder_last_hidden_state, ref.encoder_last_hidden_state, rtol=1e-5, atol=1e-5)


def after_eos(seq: torch.Tensor) -> torch.Tensor:
    """Blank out what follows the first EOS: transformers' beam search fills finished rows with
    `pad_token_id or eos` (EOS, since T5's pad is 0), ours with pad."""
    seq = seq.clone()
    is_eos = (seq == EOS).long()
    seq[(is_eos.cumsum(1) - is_eos) > 0] = -1
    return seq


@pytest.mark.parametrize("cfg", [dict(CONFIGS[0], num_decoder_layers=2), CONFIGS[1]], ids=IDS[:2])
def test_greedy_and_beam_search_equal_hf_generate(cfg):
    # (transformers' generate needs as many decoder layers as encoder layers, hence num_decoder_layers=2)
    hf = hf_t5(3, cfg, vocab_size=10, std=0.5)
    ours = T5ForConditionalGeneration.from_hf(hf).eval()
    ids = torch.randint(2, 10, (3, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    for kw in (dict(num_beams=1), dict(num_beams=3), dict(num_beams=2, length_penalty=2.0, early_stopping=True)):
        mine = ours.generate(ids, attention_mask=mask, max_new_tokens=10, **kw)
        ref = hf.generate(ids, attention_mask=mask, max_new_tokens=10, do_sample=False, **kw)
        assert mine.shape == ref.shape, kw
        assert torch.equal(after_eos(mine), after_eos(ref)), kw
        if kw["num_beams"] == 1:
            assert torch.equal(mine, ref)


def test_cached_and_uncached_decoding_give_the_same_tokens():
    ours = T5ForConditionalGeneration.from_hf(hf_t5(4, CONFIGS[2], vocab_size=10, std=0.5)).eval()
    ids = torch.randint(2, 10, (3, 6))
    for kw in (dict(), dict(num_beams=3), dict(do_sample=True, top_k=6, temperature=0.9)):
        a = ours.generate(ids, max_new_tokens=9, generator=torch.Generator().manual_seed(1), **kw)
        b = ours.generate(ids, max_new_tokens=9, use_cache=False, generator=torch.Generator().manual_seed(1), **kw)
        assert torch.equal(a, b), kw
    with pytest.raises(ValueError, match=r"input_ids must be \(batch, length\)"):
        ours.generate(ids[0], max_new_tokens=2)  # one prompt without its batch dimension


def test_from_pretrained_reads_a_saved_hf_folder(tmp_path):
    hf = hf_t5(5, CONFIGS[0])
    hf.save_pretrained(tmp_path)
    ours = T5ForConditionalGeneration.from_pretrained(tmp_path)
    ids, dec = torch.randint(2, 40, (2, 7)), torch.randint(2, 40, (2, 4))
    torch.testing.assert_close(ours(ids, decoder_input_ids=dec).logits,
                               hf(input_ids=ids, decoder_input_ids=dec).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_one_token_decoding_steps_give_the_logits_of_the_full_decoder(cfg):
    """The cached one-token step against rerunning the whole model (encoder and decoder, `forward`) on the
    decoder tokens so far, and against the uncached reference step, with a padded source (float64)."""
    ours = T5ForConditionalGeneration.from_hf(hf_t5(8, cfg, std=0.5)).double().eval()
    ids = torch.randint(2, 40, (3, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    cached, full = ours.prefill_cache(ids, mask, 6), ours.prefill_cache(ids, mask, 6)
    tokens = seq = torch.zeros(3, 1, dtype=torch.long)  # the decoder start token
    for _ in range(5):
        a, cached = ours.decode_step(tokens, cached)
        b, full = ours._decode_uncached(tokens, full)
        torch.testing.assert_close(a, b, **F64)
        torch.testing.assert_close(a, ours(ids, mask, decoder_input_ids=seq).logits[:, -1], **F64)
        tokens = a.argmax(-1, keepdim=True)  # (B, 1)
        seq = torch.cat([seq, tokens], dim=1)
    assert cached.length == 5
