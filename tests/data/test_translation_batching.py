"""Tokenizers trained on the pairs, the padded collate and the length-bucketing batch sampler."""

import pytest
import torch

from pytorch_in_action.data.translation_batching import BucketBatchSampler, PairDataset, collate
from pytorch_in_action.data.translation_grammar import generate_pairs
from pytorch_in_action.data.translation_tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    build_tokenizers,
    decode,
    train_tokenizer,
)

PAIRS = generate_pairs(1500, seed=4)


@pytest.fixture(scope="module")
def toks():
    return build_tokenizers(PAIRS, vocab_size=800, shared=True)


def test_tokenizer_round_trip_and_specials(toks):
    src, tgt = toks
    assert src is tgt
    assert [src.token_to_id(t) for t in ["<pad>", "<unk>", "<s>", "</s>"]] == [PAD_ID, UNK_ID, BOS_ID, EOS_ID]
    for en, zh in PAIRS[:200]:
        assert decode(src, src.encode(en).ids) == en
        assert decode(tgt, tgt.encode(zh).ids) == zh.replace("？", "?")  # NFKC folds the full-width mark
    ids = tgt.encode("我喜欢猫。").ids
    assert len(ids) == len([t for t in tgt.encode("我喜欢猫。").tokens if t != "▁"]) + 1  # one id per character
    assert decode(tgt, ids + [EOS_ID, 7, 8]) == "我喜欢猫。"  # stops at EOS


def test_separate_vocabularies():
    src, tgt = build_tokenizers(PAIRS, vocab_size=800, shared=False)
    assert src is not tgt
    assert src.token_to_id("猫") is None and tgt.token_to_id("猫") is not None
    assert tgt.token_to_id("▁cat") is None and src.token_to_id("▁cat") is not None


def test_chinese_tokenizer_without_leading_metaspace():
    zh = [z for _, z in PAIRS] + ["汤姆 喜欢猫。"] * 2  # one text with a space (names in real corpora)
    first = train_tokenizer(zh, vocab_size=800)
    never = train_tokenizer(zh, vocab_size=800, prepend_scheme="never")
    assert first.encode("我喜欢猫。").tokens == ["▁", "我", "喜", "欢", "猫", "。"]  # a "▁" of its own first
    assert never.encode("我喜欢猫。").tokens == ["我", "喜", "欢", "猫", "。"]
    assert never.encode("汤姆 喜欢").tokens == ["汤", "姆", "▁", "喜", "欢"]  # real spaces are still kept
    for text in zh[:200] + ["汤姆 喜欢猫。"]:
        assert decode(never, never.encode(text).ids) == text.replace("？", "?")


def test_dataset_and_collate(toks):
    ds = PairDataset(PAIRS[:8], *toks, max_len=6)
    src, tgt = ds[0]
    assert src[-1] == EOS_ID and tgt[0] == BOS_ID and tgt[-1] == EOS_ID
    assert len(src) <= 6 and len(tgt) <= 6
    batch = collate([ds[i] for i in range(4)])
    assert batch["src"].shape[0] == 4
    torch.testing.assert_close(batch["tgt_in"][:, 1:], batch["tgt_out"][:, :-1], rtol=0, atol=0)
    for i in range(4):  # rows are padded with PAD after the real tokens only
        s = batch["src"][i]
        assert torch.equal(s[: len(ds[i][0])], ds[i][0]) and (s[len(ds[i][0]) :] == PAD_ID).all()


def _lengths(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 40, (n,), generator=g).tolist()


def test_bucket_sampler_covers_every_item_within_budget():
    lengths = _lengths()
    s = BucketBatchSampler(lengths, max_tokens=200, seed=1)
    batches = list(s)
    assert len(batches) == len(s)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 200 for b in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.15 * sum(lengths)  # bucketing keeps padding small


def test_bucket_sampler_deterministic_per_seed_and_epoch():
    lengths = _lengths()
    a, b = BucketBatchSampler(lengths, 200, seed=1), BucketBatchSampler(lengths, 200, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first and len(second) == len(first)  # reshuffled, same number of batches
    b.set_epoch(1)
    assert list(b) == second
    assert list(BucketBatchSampler(lengths, 200, seed=2)) != first


def test_bucket_sampler_skip_and_shards():
    lengths = _lengths()
    s = BucketBatchSampler(lengths, 200, seed=3)
    s.set_epoch(2)
    full = list(s)
    s.set_skip(5)
    assert list(s) == full[5:]
    shards = [BucketBatchSampler(lengths, 200, seed=3, rank=r, world_size=3) for r in range(3)]
    for sh in shards:
        sh.set_epoch(2)
    got = [list(sh) for sh in shards]
    assert len({len(g) for g in got}) == 1 and len(got[0]) == len(shards[0]) == len(full) // 3
    flat = [i for g in got for b in g for i in b]
    assert len(flat) == len(set(flat))  # ranks see disjoint items
    assert sorted(map(tuple, (b for g in got for b in g))) == sorted(map(tuple, full[: 3 * len(got[0])]))


def test_bucket_sampler_rejects_too_small_budget():
    with pytest.raises(ValueError, match="smaller than the longest"):
        BucketBatchSampler([5, 50], max_tokens=20)
