"""Byte-level BPE from scratch equals `tokenizers`' BpeTrainer + BPE model with the ByteLevel pieces."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pytorch_in_action.text import ByteLevelBPETokenizer

SPECIALS = ["<s>", "</s>", "<pad>"]


def reference(texts, vocab_size, min_frequency, add_prefix_space, specials=SPECIALS):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def ref_merges(tok):
    merges = json.loads(tok.to_str())["model"]["merges"]
    return [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in merges]


CASES = [
    ("en", 300, 2, False),
    ("en", 1200, 2, True),
    ("en", 800, 5, False),
    ("zh", 600, 2, False),
    ("zh", 900, 3, True),
]


@pytest.mark.parametrize("corpus,vocab_size,min_frequency,add_prefix_space", CASES)
def test_training_and_encoding_equal_tokenizers(corpora, corpus, vocab_size, min_frequency, add_prefix_space):
    texts = corpora.english() if corpus == "en" else corpora.chinese(150)
    ref = reference(texts, vocab_size, min_frequency, add_prefix_space)
    ours = ByteLevelBPETokenizer(add_prefix_space=add_prefix_space)
    ours.train(texts, vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS)
    assert ours.get_vocab() == ref.get_vocab()
    assert ours.merges == ref_merges(ref)
    probes = texts[:60] + ["<s>hello world</s>", "  two  spaces ", "你好，世界！<pad>", "naïve café 🙂"]
    for text in probes:
        enc, got = ref.encode(text), ours.encode_with_offsets(text)
        assert got.ids == enc.ids, text
        assert got.tokens == enc.tokens
        assert got.offsets == enc.offsets
        assert ours.decode(got.ids) == ref.decode(enc.ids, skip_special_tokens=False)
        assert ours.decode(got.ids, skip_special_tokens=True) == ref.decode(enc.ids)


def test_padding_and_truncation_equal_tokenizers(corpora):
    texts = corpora.english(200)
    ref = reference(texts, 500, 2, False)
    ours = ByteLevelBPETokenizer().train(texts, 500, special_tokens=SPECIALS)
    pad = ours.get_vocab()["<pad>"]
    batch = texts[:8]
    for side in ("right", "left"):
        ref.enable_truncation(max_length=12)
        ref.enable_padding(pad_id=pad, pad_token="<pad>", direction=side)
        want = ref.encode_batch(batch)
        got = ours.encode_batch(batch, max_length=12, truncation=True, padding="longest", pad_id=pad,
                                pad_token="<pad>", padding_side=side)
        assert [e.ids for e in got] == [e.ids for e in want]
        assert [e.attention_mask for e in got] == [e.attention_mask for e in want]
        assert [e.offsets for e in got] == [e.offsets for e in want]


@pytest.fixture(scope="module")
def trained(corpora):
    return ByteLevelBPETokenizer().train(corpora.english(200) + corpora.chinese(50), 600, special_tokens=SPECIALS)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_round_trip_any_unicode(trained, text):
    assert trained.decode(trained.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8").filter(lambda c: unicodedata.ucd_3_2_0.category(c) != "Cn"),
               max_size=40))
def test_encoding_equals_tokenizers_on_random_text(trained, text):
    """Characters assigned in Unicode 3.2 (see test_pretokenize.py for why)."""
    ref = Tokenizer(models.BPE(vocab=trained.get_vocab(), merges=trained.merges))
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    ref.add_special_tokens(SPECIALS)
    assert trained.encode(text) == ref.encode(text).ids
