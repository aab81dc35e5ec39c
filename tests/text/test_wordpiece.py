"""WordPiece from scratch against `tokenizers`' WordPieceTrainer + WordPiece model + BertPreTokenizer
(+ BertNormalizer).

The Rust trainer is not deterministic: it numbers the `##c` pieces in the hash-map order of the words, and
ties between pairs that differ only in those pieces go whichever way the numbering says (and `limit_alphabet`
drops an arbitrary subset of equally frequent characters). Two Rust runs on the same corpus can therefore
learn different vocabularies. These tests compare only what every Rust run shares, which our deterministic
trainer computes and reports (`hash_tie_at`, `tied_alphabet`):

* the special tokens, the alphabet (ids included) and the set of `##c` pieces;
* every merged token, in creation order (so with its id), up to the first tie that hash order decides;
* a run stopped just before that tie: the whole vocabulary, and every encoding (tokens and offsets);
* a full run: the size to within the spread of Rust's own runs, and the encodings of every word whose
  candidate pieces are in both vocabularies or in neither (the rest touch tied pieces).
The `##c` ids differ between runs, so encodings are compared as token strings, not ids.
"""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from pytorch_in_action.text import WordPieceTokenizer
from pytorch_in_action.text.normalize import BertNormalizer
from pytorch_in_action.text.pretokenize import bert_split

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
RUST_RUNS = 2


def reference(texts, vocab_size, min_frequency, prefix="##", bert_normalizer=False, **options):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=prefix))
    if bert_normalizer:
        tok.normalizer = normalizers.BertNormalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix=prefix)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS,
                                        continuing_subword_prefix=prefix, show_progress=False, **options)
    tok.train_from_iterator(texts, trainer)
    return tok


def ours(texts, vocab_size, min_frequency, prefix="##", bert_normalizer=False, **options):
    tok = WordPieceTokenizer(continuing_subword_prefix=prefix,
                             normalizer=BertNormalizer() if bert_normalizer else None)
    return tok.train(texts, vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS, **options)


def by_id(vocab: dict[str, int]) -> list[str]:
    return sorted(vocab, key=vocab.__getitem__)


def split_vocab(tokens: list[str], prefix: str) -> tuple[list[str], set[str], list[str]]:
    """Specials and alphabet (in id order), the `##c` pieces (a set: their ids follow hash order), merged tokens."""
    n = len(prefix)
    k = next((i for i, t in enumerate(tokens) if len(t) != 1 and t not in SPECIALS), len(tokens))
    m = next((i for i in range(k, len(tokens)) if not (tokens[i].startswith(prefix) and len(tokens[i]) == n + 1)),
             len(tokens))
    return tokens[:k], set(tokens[k:m]), tokens[m:]


# (corpus, vocab_size, min_frequency, prefix, BERT normaliser, trainer options); "mixed" is the case where the
# trainer must stop early: numbers seen once leave too few pairs with count >= 2 to reach vocab_size
CASES = [
    ("mixed", 300, 2, "##", True, {}),
    ("mixed3", 400, 2, "##", True, {}),
    ("en", 400, 2, "##", False, {}),
    ("en", 900, 3, "##", False, {"limit_alphabet": 40}),
    ("en", 700, 2, "@@", False, {"initial_alphabet": list("xyzΩ")}),
    ("zh", 5000, 8, "##", False, {}),
    ("zh", 1200, 4, "##", False, {"limit_alphabet": 900, "initial_alphabet": ["龘"]}),
    ("zh", 5000, 3, "##", True, {}),
]


def corpus(corpora, name):
    return {"en": corpora.english, "zh": corpora.chinese, "mixed": corpora.mixed,
            "mixed3": lambda: corpora.mixed(3)}[name]()


def assert_determined_part_equal(got: WordPieceTokenizer, ref: Tokenizer, prefix: str) -> None:
    mine, theirs = split_vocab(got.id_to_token, prefix), split_vocab(by_id(ref.get_vocab()), prefix)
    if got.tied_alphabet:  # Rust kept an arbitrary subset of the tied characters: compare the rest
        tied = got.tied_alphabet
        assert [t for t in mine[0] if t not in tied] == [t for t in theirs[0] if t not in tied]
        assert len(mine[0]) == len(theirs[0]) and got.hash_tie_at == len(mine[0])  # nothing after is promised
        return
    assert mine[0] == theirs[0]
    assert mine[1] == theirs[1]
    start = len(mine[0]) + len(mine[1])
    stop = len(got.id_to_token) if got.hash_tie_at is None else got.hash_tie_at
    assert mine[2][:stop - start] == theirs[2][:stop - start]
    if got.hash_tie_at is None:
        assert mine[2] == theirs[2]


def same_candidates(word: str, a: dict, b: dict, prefix: str) -> bool:
    """Whether greedy longest-match sees the same vocabulary in `a` and `b` for every piece of `word`."""
    return all(((w := (word[i:j] if i == 0 else prefix + word[i:j])) in a) == (w in b)
               for i in range(len(word)) for j in range(i + 1, len(word) + 1))


def compare_encodings(got: WordPieceTokenizer, ref: Tokenizer, texts, prefix, normalizer) -> tuple[int, int]:
    """Encodings of every word untouched by the vocabularies' difference must match; returns (equal, total)."""
    a, b = got.get_vocab(), ref.get_vocab()
    equal = total = 0
    for text in texts:
        norm = normalizer.normalize_str(text) if normalizer else text
        for word, _ in bert_split(norm):
            total += 1
            if len(word) > got.max_input_chars_per_word or not same_candidates(word, a, b, prefix):
                continue
            enc, mine = ref.encode(word, add_special_tokens=False), got.encode_with_offsets(word)
            assert mine.tokens == enc.tokens and mine.offsets == enc.offsets, word
            equal += 1
    return equal, total


@pytest.mark.parametrize("name,vocab_size,min_frequency,prefix,norm,options", CASES)
def test_what_every_rust_run_shares_equals_ours(corpora, name, vocab_size, min_frequency, prefix, norm, options):
    texts = corpus(corpora, name)
    got = ours(texts, vocab_size, min_frequency, prefix, norm, **options)
    assert got.get_vocab() == ours(texts, vocab_size, min_frequency, prefix, norm, **options).get_vocab()
    for _ in range(RUST_RUNS):
        ref = reference(texts, vocab_size, min_frequency, prefix, norm, **options)
        assert_determined_part_equal(got, ref, prefix)
        size, rust_size = len(got.get_vocab()), len(ref.get_vocab())
        if got.hash_tie_at is None:
            assert size == rust_size
        else:  # Rust's own runs spread by a few tokens here (e.g. 248-251 on "mixed")
            assert abs(size - rust_size) <= max(4, rust_size // 50), (size, rust_size)
        equal, total = compare_encodings(got, ref, texts[:150], prefix, got.normalizer)
        print(f"{name}: size ours {size} / Rust {rust_size}, first hash tie at {got.hash_tie_at}; "
              f"{equal}/{total} words encoded identically, the rest touch tied pieces")
        assert equal >= 0.7 * total


@pytest.mark.parametrize("name,vocab_size,min_frequency,prefix,norm,options",
                         [c for c in CASES if c[0] != "zh" or c[2] == 8])
def test_a_run_stopped_before_its_first_hash_tie_is_equal_everywhere(corpora, name, vocab_size, min_frequency,
                                                                     prefix, norm, options):
    texts = corpus(corpora, name)
    tie = ours(texts, vocab_size, min_frequency, prefix, norm, **options).hash_tie_at
    assert tie is not None  # each of these corpora has one: the cut below is a real restriction
    got = ours(texts, tie, min_frequency, prefix, norm, **options)
    assert got.hash_tie_at is None and not got.tied_alphabet
    merged = split_vocab(got.id_to_token, prefix)[2]
    assert merged  # at least one merge before the tie
    for _ in range(RUST_RUNS):
        ref = reference(texts, tie, min_frequency, prefix, norm, **options)
        mine, theirs = split_vocab(got.id_to_token, prefix), split_vocab(by_id(ref.get_vocab()), prefix)
        assert mine == theirs
        for text in texts[:80] + ["[CLS] unseen wordsqq, don't! [SEP]", "龘 is rare", "x" * 120, "Ünïcödé ＡＢＣ",
                                  "Héllo\tWÖRLD\u200b İstanbul ΣΑΣ 中文，测试\x00"]:
            enc, mine_enc = ref.encode(text), got.encode_with_offsets(text)
            assert mine_enc.tokens == enc.tokens, text
            assert mine_enc.offsets == enc.offsets
            assert got.decode(mine_enc.ids, skip_special_tokens=True) == ref.decode(enc.ids)


def test_the_bert_normaliser_is_what_made_the_trainers_disagree(corpora):
    """On the mixed corpus a normalised Rust run stops early (min_frequency); training ours on raw text runs
    Chinese sentences together into long words whose pairs keep merging up to vocab_size."""
    texts = corpora.mixed()
    rust = len(reference(texts, 300, 2, bert_normalizer=True).get_vocab())
    raw = len(ours(texts, 300, 2).get_vocab())
    normalised = len(ours(texts, 300, 2, bert_normalizer=True).get_vocab())
    print(f"Rust {rust}, ours without the normaliser {raw}, ours with it {normalised}")
    assert rust < 290 and raw == 300 and abs(normalised - rust) <= 6


def test_bert_normalizer_equals_tokenizers(corpora):
    texts = corpora.english() + corpora.chinese() + [
        "Héllo\tWÖRLD\u200b\x00\ufffdİΣΑΣ ﬁ Ａｂｃ　x\u3000y 中文，测试 e\u0301\u0327 Ω", "Café  Ñandú\r\nend\x7f", "가나 ひらがな 漢字"]
    for options in [{}, {"lowercase": False}, {"strip_accents": False}, {"strip_accents": True, "lowercase": False},
                    {"handle_chinese_chars": False, "clean_text": False}]:
        ref, mine = normalizers.BertNormalizer(**options), BertNormalizer(**options)
        for text in texts:
            assert mine.normalize_str(text) == ref.normalize_str(text), (options, text)
            norm, source = mine.normalize_with_alignment(text)
            assert norm == mine.normalize_str(text) and len(source) == len(norm)
            assert source == sorted(source) and all(0 <= i < len(text) for i in source)


def test_long_word_and_unknown_character_become_unk(corpora):
    tok = WordPieceTokenizer().train(corpora.english(200), 300, special_tokens=SPECIALS)
    unk = tok.get_vocab()["[UNK]"]
    assert tok.encode("a" * 101) == [unk]
    assert tok.encode("☃") == [unk]
