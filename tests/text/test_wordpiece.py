"""WordPiece from scratch equals `tokenizers`' WordPieceTrainer + WordPiece model + BertPreTokenizer."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from pytorch_in_action.text import WordPieceTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def reference(texts, vocab_size, min_frequency, prefix="##", **options):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=prefix))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix=prefix)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS,
                                        continuing_subword_prefix=prefix, show_progress=False, **options)
    tok.train_from_iterator(texts, trainer)
    return tok


CASES = [
    ("en", 400, 2, "##", {}),
    ("en", 900, 3, "##", {"limit_alphabet": 40}),
    ("en", 700, 2, "@@", {"initial_alphabet": list("xyzΩ")}),
    ("zh", 1500, 2, "##", {"limit_alphabet": 600}),
    ("zh", 2500, 2, "##", {}),
    ("zh", 1200, 4, "##", {"limit_alphabet": 900, "initial_alphabet": ["龘"]}),
]


@pytest.mark.parametrize("corpus,vocab_size,min_frequency,prefix,options", CASES)
def test_training_and_encoding_equal_tokenizers(corpora, corpus, vocab_size, min_frequency, prefix, options):
    texts = corpora.english() if corpus == "en" else corpora.chinese()
    ref = reference(texts, vocab_size, min_frequency, prefix, **options)
    ours = WordPieceTokenizer(continuing_subword_prefix=prefix)
    # the reference vocabulary settles only the Rust trainer's hash-map-ordered choices (see trainer.py)
    ours.train(texts, vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS,
               reference_vocab=ref.get_vocab(), **options)
    assert ours.get_vocab() == ref.get_vocab()
    for text in texts[:80] + ["[CLS] unseen wordsqq, don't! [SEP]", "龘 is rare", "x" * 120]:
        enc, got = ref.encode(text), ours.encode_with_offsets(text)
        assert got.ids == enc.ids, text
        assert got.tokens == enc.tokens
        assert got.offsets == enc.offsets
        assert ours.decode(got.ids, skip_special_tokens=True) == ref.decode(enc.ids)


def test_without_reference_only_hash_order_choices_differ(corpora):
    """Without a reference run the vocabulary is deterministic and holds the same alphabet and pieces."""
    texts = corpora.chinese()
    ref = reference(texts, 1500, 2, limit_alphabet=600)
    a = WordPieceTokenizer().train(texts, 1500, special_tokens=SPECIALS, limit_alphabet=600)
    b = WordPieceTokenizer().train(list(texts), 1500, special_tokens=SPECIALS, limit_alphabet=600)
    assert a.get_vocab() == b.get_vocab()
    assert len(a.get_vocab()) == len(ref.get_vocab())
    singles = {t for t in ref.get_vocab() if len(t) == 1}
    assert len({t for t in a.get_vocab() if len(t) == 1}) == len(singles)


def test_long_word_and_unknown_character_become_unk(corpora):
    tok = WordPieceTokenizer().train(corpora.english(200), 300, special_tokens=SPECIALS)
    unk = tok.get_vocab()["[UNK]"]
    assert tok.encode("a" * 101) == [unk]
    assert tok.encode("☃") == [unk]
