"""The bundled Tatoeba corpus, the synthetic English->Chinese corpus, the sentence-pair readers, cleaning
(OpenCC Traditional->Simplified), splits by English sentence, and the word-by-word baseline."""

import gzip
import json
import random

import pytest
import sacrebleu

from pytorch_in_action.data.translation import (
    SYNTHETIC_ATTRIBUTION,
    TATOEBA,
    bundled_corpus,
    clean_pairs,
    clean_text,
    load_splits,
    read_hf,
    read_tsv,
    split_pairs,
    to_simplified,
)
from pytorch_in_action.data.translation_baseline import WordByWordTranslator, chinese_ngrams, english_words
from pytorch_in_action.data.translation_grammar import PLACES, generate_pairs, sentence_pair
from pytorch_in_action.errors import PiaError

# -- grammar ----------------------------------------------------------------------------------------------


def test_grammar_is_a_function_of_english():
    """Every English sentence gets exactly one Chinese translation, so a perfect score is reachable."""
    rng, seen = random.Random(3), {}
    for _ in range(20_000):
        en, zh = sentence_pair(rng)
        assert seen.setdefault(en, zh) == zh, en
    assert len(seen) > 15_000  # almost every draw is new: far too many combinations to memorise


def test_generate_pairs_is_seeded_and_distinct():
    a, b, c = generate_pairs(2000, seed=1), generate_pairs(2000, seed=1), generate_pairs(2000, seed=2)
    assert a == b and a != c
    assert len({en for en, _ in a}) == 2000


@pytest.mark.parametrize("needle", ["个", "本", "只", "杯", "不", "没", "吗", "什么", "哪里", "了", "过", "会"])
def test_grammar_covers_the_advertised_constructions(needle):
    assert any(needle in zh for _, zh in generate_pairs(3000, seed=0))


def test_time_and_place_move_before_the_verb():
    pairs = dict(generate_pairs(20_000, seed=0))
    hits = [(en, zh) for en, zh in pairs.items() if en.endswith(" yesterday.") and en.startswith("I ")]
    assert len(hits) > 10
    with_place = 0
    for en, zh in hits:
        place = [p for p in PLACES if en.endswith(f" {p[0]} yesterday.")]
        assert zh.startswith("我昨天" + (place[0][1] if place else "")), (en, zh)
        with_place += bool(place)
    assert with_place >= 2


def test_examples():
    pairs = dict(generate_pairs(20_000, seed=0))
    assert pairs["Where is the station?"] == "车站在哪里？"
    assert pairs["Where is the library?"] == "图书馆在哪里？"
    rng = random.Random(0)
    for _ in range(2000):
        en, zh = sentence_pair(rng)
        assert en[0].isupper() and en[-1] in ".?"
        assert zh[-1] == ("？" if en.endswith("?") else "。")


# -- cleaning, readers -------------------------------------------------------------------------------------


def test_clean_text_nfkc_and_spaces():
    assert clean_text("  Ｈｅｌｌｏ，\u3000world！ ") == "Hello, world!"
    assert clean_text("我們\t喜歡  貓") == "我們 喜歡 貓"  # traditional characters stay traditional
    assert clean_text("ﬁne ①") == "fine 1"


def test_read_tsv_two_and_three_columns_and_blank_lines(tmp_path):
    f = tmp_path / "cmn.txt"
    f.write_text("Hi.\t嗨。\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123\n\n   \nRun!\t你用跑的。\n",
                 encoding="utf-8")
    assert read_tsv(f) == [("Hi.", "嗨。"), ("Run!", "你用跑的。")]


def test_read_tsv_line_without_tab_names_file_and_line(tmp_path):
    f = tmp_path / "pairs.tsv"
    f.write_text("Hi.\t嗨。\n\nno tab here\n", encoding="utf-8")
    with pytest.raises(PiaError, match=r"pairs\.tsv:3: expected 'English<TAB>Chinese', found no tab"):
        read_tsv(f)


@pytest.mark.parametrize("content,message", [
    ("Hi.\t\n", r":1: the Chinese side is empty"),
    ("\t嗨。\n", r":1: the English side is empty"),
    ("\n\n", r"no sentence pairs"),
])
def test_read_tsv_bad_content(tmp_path, content, message):
    f = tmp_path / "x.tsv"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(PiaError, match=message):
        read_tsv(f)


def test_read_tsv_missing_and_binary(tmp_path):
    with pytest.raises(PiaError, match="not found"):
        read_tsv(tmp_path / "nope.tsv")
    (tmp_path / "bin.tsv").write_bytes(b"\xff\xfe\x00garbage\tx\n")
    with pytest.raises(PiaError, match="not UTF-8"):
        read_tsv(tmp_path / "bin.tsv")


def test_read_hf_json_csv_and_disk(tmp_path):
    import datasets

    rows = [{"en": "Hi.", "zh": "嗨。"}, {"en": "Run!", "zh": "跑！"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    assert read_hf(tmp_path / "d.jsonl") == [("Hi.", "嗨。"), ("Run!", "跑！")]
    (tmp_path / "d.csv").write_text("en,zh\nHi.,嗨。\n", encoding="utf-8")
    assert read_hf(tmp_path / "d.csv") == [("Hi.", "嗨。")]
    datasets.Dataset.from_list([{"translation": r} for r in rows]).save_to_disk(str(tmp_path / "disk"))
    assert read_hf(tmp_path / "disk") == [("Hi.", "嗨。"), ("Run!", "跑！")]


def test_read_hf_wrong_columns(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"english": "Hi.", "chinese": "嗨。"}) + "\n", "utf-8")
    with pytest.raises(PiaError, match=r"expected columns 'en' and 'zh', found 'english', 'chinese'"):
        read_hf(tmp_path / "d.jsonl")
    with pytest.raises(PiaError, match="not found"):
        read_hf(tmp_path / "missing.jsonl")
    (tmp_path / "d.txt").write_text("x", "utf-8")
    with pytest.raises(PiaError, match="unsupported dataset file type"):
        read_hf(tmp_path / "d.txt")


def test_clean_pairs_keeps_every_translation_drops_duplicates_and_filters():
    pairs = [("Hi.", "嗨。"), ("Hi. ", "你好。"), ("Hi.", "嗨。"), ("  ", "空"), ("Long " * 50, "长"), ("Ｒｕｎ!", "跑")]
    assert clean_pairs(pairs, max_chars=100) == [("Hi.", "嗨。"), ("Hi.", "你好。"), ("Run!", "跑")]
    assert clean_pairs([("We like cats.", "我們喜歡貓。")], simplified=True) == [("We like cats.", "我们喜欢猫。")]
    assert clean_pairs([("We like cats.", "我們喜歡貓。")]) == [("We like cats.", "我們喜歡貓。")]


def test_opencc_converts_traditional_to_simplified():
    assert to_simplified("這是我們的書，請問你會說中文嗎？") == "这是我们的书，请问你会说中文吗？"
    assert to_simplified("湯姆沒有來。") == "汤姆没有来。"
    assert to_simplified("我们喜欢猫。Tom 123") == "我们喜欢猫。Tom 123"  # Simplified and Latin text unchanged


def test_split_pairs_seeded_disjoint_complete():
    pairs = [(f"s{i}", f"t{i}") for i in range(1000)]
    a, b = split_pairs(pairs, seed=5), split_pairs(pairs, seed=5)
    assert a == b and split_pairs(pairs, seed=6) != a
    assert (len(a["train"]), len(a["valid"]), len(a["test"])) == (900, 50, 50)
    assert sorted(sum(a.values(), [])) == sorted(pairs)
    with pytest.raises(PiaError, match="at least 3"):
        split_pairs(pairs[:2])


def test_split_pairs_keeps_all_translations_of_a_sentence_on_one_side():
    rng = random.Random(0)
    pairs = [(f"s{i}", f"t{i}-{k}") for i in range(300) for k in range(rng.randint(1, 4))]
    rng.shuffle(pairs)
    split = split_pairs(pairs, seed=1)
    sources = {name: {en for en, _ in part} for name, part in split.items()}
    assert not (sources["train"] & sources["valid"] or sources["train"] & sources["test"]
                or sources["valid"] & sources["test"])
    assert (len(sources["valid"]), len(sources["test"]), len(sources["train"])) == (15, 15, 270)
    assert sorted(sum(split.values(), [])) == sorted(pairs)  # every translation kept


def test_bundled_tatoeba_corpus_loads_with_its_attribution():
    notice = TATOEBA.with_name("tatoeba-en-zh.README.md").read_text(encoding="utf-8")
    assert "tatoeba.org" in notice and "CC-BY 2.0 FR" in notice
    raw = read_tsv(TATOEBA)
    assert len(raw) == 16_174 and raw[0] == ("Hi.", "嗨。")
    assert any("們" in zh for _, zh in raw)  # the file mixes Traditional characters in ...
    splits = load_splits()  # ... the default corpus of the recipe, Simplified by default
    assert not any("們" in zh or "這" in zh for part in splits.values() for _, zh in part)
    sources = {name: {en for en, _ in part} for name, part in splits.items()}
    assert not (sources["train"] & sources["test"] or sources["train"] & sources["valid"]
                or sources["valid"] & sources["test"])
    assert len(splits["train"]) > 14_000 and 700 < len(splits["test"]) < 900
    by_en = {}
    for en, zh in splits["train"]:
        by_en.setdefault(en, set()).add(zh)
    assert sum(len(v) > 1 for v in by_en.values()) > 100  # several translations of one sentence all kept
    kept = load_splits(simplified=False)
    assert any("們" in zh for part in kept.values() for _, zh in part)


def test_read_tsv_gzip_and_corrupt_gzip(tmp_path):
    f = tmp_path / "pairs.tsv.gz"
    with gzip.open(f, "wt", encoding="utf-8") as out:
        out.write("Hi.\t嗨。\nRun!\t跑！\n")
    assert read_tsv(f) == [("Hi.", "嗨。"), ("Run!", "跑！")]
    (tmp_path / "bad.tsv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(PiaError, match="bad.tsv.gz: cannot read"):
        read_tsv(tmp_path / "bad.tsv.gz")


# -- the word-by-word baseline ----------------------------------------------------------------------------


def test_baseline_tokenisation():
    assert english_words("Tom doesn't like ＣＡＴＳ!") == ["tom", "doesn't", "like", "cats", "!"]
    assert chinese_ngrams("我喜欢猫。Tom", 2) == {"我", "喜", "欢", "猫", "我喜", "喜欢", "欢猫"}


def test_word_by_word_baseline_learns_a_dictionary():
    pairs = generate_pairs(3000, seed=0)
    base = WordByWordTranslator().fit(pairs[:2500])
    assert base.table["library"] == "图书馆" and base.table["station"] == "车站"
    test = pairs[2500:]
    hyps = base.translate_all([en for en, _ in test])
    score = sacrebleu.corpus_bleu(hyps, [[zh for _, zh in test]], tokenize="zh").score
    assert 5 < score < 60, score  # better than nothing, far from the grammar's exact translations
    assert WordByWordTranslator().fit(pairs[:2500]).translate("Zzyzx qwerty.") == "。"  # unknown words dropped


def test_bundled_corpus_is_written_in_the_real_format(tmp_path, monkeypatch):
    monkeypatch.setenv("PIA_CACHE", str(tmp_path))
    root = bundled_corpus(n_pairs=600, seed=0)
    assert root.is_relative_to(tmp_path)
    lines = (root / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert all(line.split("\t")[2] == SYNTHETIC_ATTRIBUTION for line in lines)
    splits = load_splits("synthetic", n_pairs=600, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"train": 540, "valid": 30, "test": 30}
    assert not {en for en, _ in splits["train"]} & {en for en, _ in splits["test"]}
    assert splits == load_splits(str(root))  # the folder path reads the same files


def test_load_splits_from_one_file_and_hf(tmp_path):
    pairs = generate_pairs(300, seed=9)
    f = tmp_path / "cmn.txt"
    f.write_text("".join(f"{en}\t{zh}\tattribution\n" for en, zh in pairs), encoding="utf-8")
    s = load_splits(str(f), seed=1)
    assert sum(len(v) for v in s.values()) == 300
    j = tmp_path / "d.jsonl"
    j.write_text("".join(json.dumps({"en": en, "zh": zh}, ensure_ascii=False) + "\n" for en, zh in pairs), "utf-8")
    assert load_splits(hf=str(j), seed=1) == s
    with pytest.raises(PiaError, match="either --data or --hf"):
        load_splits(str(f), str(j))
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "train.tsv").write_text("a\tb\n", "utf-8")
    with pytest.raises(PiaError, match="missing valid.tsv, test.tsv"):
        load_splits(str(tmp_path / "folder"))
