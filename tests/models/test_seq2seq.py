"""The translation encoder-decoder: tied weights, padding, and cached decoding equal to uncached decoding."""

import pytest
import torch

from pytorch_in_action.models.seq2seq import BOS_ID, EOS_ID, PAD_ID, Seq2SeqConfig, Seq2SeqTransformer


def _model(seed=0, share=True, norm_first=True, V=40):
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(V, V, d_model=32, n_head=4, num_encoder_layers=2, num_decoder_layers=2,
                        dim_feedforward=48, dropout=0.0, max_len=64, norm_first=norm_first, share_embeddings=share)
    return Seq2SeqTransformer(cfg).double().eval()


def _src(seed=0, B=5, S=9, V=40):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V, (B, S), generator=g)
    lengths = torch.randint(2, S + 1, (B,), generator=g)
    src[torch.arange(S)[None, :] >= lengths[:, None]] = PAD_ID
    src[torch.arange(B), lengths - 1] = EOS_ID
    return src


def test_tied_weights_and_shapes():
    m = _model(share=True)
    assert m.lm_head.weight is m.tgt_embed.embedding.weight is m.src_embed.embedding.weight
    m2 = _model(share=False)
    assert m2.lm_head.weight is m2.tgt_embed.embedding.weight
    assert m2.src_embed.embedding.weight is not m2.tgt_embed.embedding.weight
    logits = m(_src(), torch.randint(4, 40, (5, 7)))
    assert logits.shape == (5, 7, 40)
    with pytest.raises(ValueError, match="shared vocabulary"):
        Seq2SeqTransformer(Seq2SeqConfig(10, 12, share_embeddings=True))


@pytest.mark.parametrize("norm_first", [True, False])
def test_extra_padding_changes_nothing(norm_first):
    """Padding the source or the target further leaves every real position's output unchanged."""
    m = _model(norm_first=norm_first)
    src, tgt = _src(), torch.randint(4, 40, (5, 6))
    more_src = torch.cat([src, torch.full((5, 4), PAD_ID)], 1)
    more_tgt = torch.cat([tgt, torch.full((5, 3), PAD_ID)], 1)
    torch.testing.assert_close(m(more_src, more_tgt)[:, :6], m(src, tgt), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_step_logits_equal_full_decoder(seed):
    m = _model(seed)
    src = _src(seed)
    memory, src_pad = m.encode(src)
    tgt = torch.cat([torch.full((5, 1), BOS_ID), torch.randint(4, 40, (5, 6))], 1)
    full = m.decode(tgt, memory, src_pad)  # (B, T, V)
    cache = {"memory": memory, "src_pad": src_pad, "kv": None, "pos": 0}
    for t in range(tgt.size(1)):
        logits, cache = m._step_cached(tgt[:, t : t + 1], cache)
        want = m._no_specials(full[:, t])
        torch.testing.assert_close(logits, want, rtol=1e-10, atol=1e-10)


def _greedy_reference(m, src, steps):
    """Textbook greedy decoding: re-run the whole model on the growing prefix, pick the argmax."""
    ys = torch.full((src.size(0), 1), BOS_ID)
    done = torch.zeros(src.size(0), dtype=torch.bool)
    for _ in range(steps):
        logits = m(src, ys)[:, -1]
        logits[:, [PAD_ID, BOS_ID]] = float("-inf")
        nxt = torch.where(done, PAD_ID, logits.argmax(-1))
        done |= nxt == EOS_ID
        ys = torch.cat([ys, nxt[:, None]], 1)
    out = []
    for row in ys[:, 1:].tolist():
        out.append(row[: row.index(EOS_ID)] if EOS_ID in row else [t for t in row if t != PAD_ID])
    return out


@pytest.mark.parametrize("seed", [0, 3])
def test_greedy_cached_uncached_and_reference_agree(seed):
    m = _model(seed)
    # make EOS likely after a few steps so both finished and unfinished rows occur
    with torch.no_grad():
        m.lm_head.weight[EOS_ID] += 0.15 * m.lm_head.weight[5:].mean(0)
    src = _src(seed)
    a = m.translate(src, max_new_tokens=12, use_cache=True)
    b = m.translate(src, max_new_tokens=12, use_cache=False)
    assert a == b == _greedy_reference(m, src, 12)


@pytest.mark.parametrize("seed,beams", [(0, 3), (1, 4)])
def test_beam_cached_equals_uncached(seed, beams):
    m = _model(seed)
    src = _src(seed)
    a = m.translate(src, num_beams=beams, max_new_tokens=10, use_cache=True, length_penalty=0.6)
    b = m.translate(src, num_beams=beams, max_new_tokens=10, use_cache=False, length_penalty=0.6)
    assert a == b
    assert all(PAD_ID not in row and BOS_ID not in row for row in a)

