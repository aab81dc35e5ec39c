"""The fast T5 decoder (flat one-token step over packed products) gives the tokens and logits of the model's own
`generate`."""

import pytest
import torch
from torch.testing import assert_close
from transformers import T5Config as HFConfig
from transformers import T5ForConditionalGeneration as HFT5

from pytorch_in_action.fast import cpu_decoder
from pytorch_in_action.fast.linear import PackedLinears
from pytorch_in_action.fast.t5 import FusedQKV, flat_step
from pytorch_in_action.models.t5 import T5ForConditionalGeneration

F64 = dict(rtol=1e-10, atol=1e-10)
CONFIGS = [
    dict(feed_forward_proj="relu", tie_word_embeddings=True, num_layers=2, num_decoder_layers=3, num_heads=4,
         d_kv=4),
    dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False, num_layers=2, num_heads=2, d_kv=8),
]


def model_of(cfg: dict, vocab_size: int = 10) -> T5ForConditionalGeneration:
    torch.manual_seed(3)
    hf = HFT5(HFConfig(vocab_size=vocab_size, d_model=16, d_ff=24, dropout_rate=0.0, decoder_start_token_id=0,
                       **cfg)).eval()
    with torch.no_grad():
        for p in hf.parameters():  # peaky predictions so that EOS and beam choices happen
            p.normal_(0.0, 0.5)
        if not cfg["tie_word_embeddings"]:  # a head of its own, as a v1.1 checkpoint has
            hf.lm_head.weight = torch.nn.Parameter(torch.randn_like(hf.shared.weight))
    return T5ForConditionalGeneration.from_hf(hf).eval()


@pytest.mark.parametrize("cfg", CONFIGS, ids=["relu-tied", "gated-untied"])
@pytest.mark.parametrize("kw", [dict(), dict(num_beams=3), dict(do_sample=True, top_k=6, temperature=0.9)],
                         ids=["greedy", "beams", "sampling"])
@pytest.mark.parametrize("batch", [1, 3])
def test_fast_decoder_gives_the_models_tokens(cfg, kw, batch):
    model = model_of(cfg)
    ids = torch.randint(2, 10, (batch, 8), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[-1, 5:] = 0
    plain = model.generate(ids, attention_mask=mask, max_new_tokens=10, generator=torch.Generator().manual_seed(2),
                           **kw)
    fast = cpu_decoder(model).generate(ids, attention_mask=mask, max_new_tokens=10,
                                       generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(fast, plain)


@pytest.mark.parametrize("cfg", CONFIGS, ids=["relu-tied", "gated-untied"])
def test_flat_step_gives_the_logits_and_cache_of_the_models_step(cfg):
    model = model_of(cfg, vocab_size=40).double()
    ids = torch.randint(2, 40, (3, 7), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    with torch.inference_mode():
        plain, flat = model.prefill_cache(ids, mask, 6), model.prefill_cache(ids, mask, 6)
        qkv = [FusedQKV(block.layer[0].SelfAttention) for block in model.decoder.block]
        linears = PackedLinears(model)
        tokens = torch.zeros(3, 1, dtype=torch.long)  # the decoder start token
        for _ in range(5):
            logits, plain = model.decode_step(tokens, plain)
            assert_close(flat_step(model, tokens, flat, qkv, linears), logits, **F64)
            tokens = logits.argmax(-1, keepdim=True)  # (B, 1)
    assert flat.length == plain.length == 5
    assert_close(flat.kv, plain.kv, **F64)
