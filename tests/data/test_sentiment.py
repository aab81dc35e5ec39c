"""The bundled review corpus (label,review CSV), the labelled-table reader and its errors, seeded splits."""

from __future__ import annotations

import json

import pytest

from pytorch_in_action.data.sentiment import (
    Labelled,
    bundled_reviews,
    materialize_reviews,
    read_labelled,
    split,
)
from pytorch_in_action.errors import PiaError


@pytest.fixture(scope="module")
def reviews_csv(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PIA_CACHE", str(tmp_path_factory.mktemp("cache")))
    path = materialize_reviews(seed=0)
    yield path
    mp.undo()


def test_bundled_corpus_is_clean_and_round_trips(reviews_csv):
    data = read_labelled(reviews_csv)
    assert reviews_csv.read_text(encoding="utf-8").startswith("label,review\n")
    assert data.texts == bundled_reviews().texts and data.labels == bundled_reviews().labels
    assert len(data) > 15000 and set(data.labels) == {0, 1}
    assert len(set(data.texts)) == len(data.texts), "duplicates left"
    assert all(t.strip() == t and t for t in data.texts)
    assert 0.4 < sum(data.labels) / len(data) < 0.6


def test_split_is_seeded_stratified_and_disjoint(reviews_csv):
    data = read_labelled(reviews_csv)
    parts = split(data, seed=0)
    assert sum(len(p) for p in parts.values()) == len(data)
    assert not set(parts["train"].texts) & set(parts["test"].texts)
    assert not set(parts["valid"].texts) & set(parts["test"].texts)
    ratio = sum(data.labels) / len(data)
    for p in parts.values():
        assert abs(sum(p.labels) / len(p) - ratio) < 0.005
    assert abs(len(parts["test"]) - 0.1 * len(data)) <= 1
    assert split(data, seed=0)["test"].texts == parts["test"].texts
    assert split(data, seed=1)["test"].texts != parts["test"].texts
    # the materialised split files hold the same rows
    test_file = reviews_csv.with_name("test-seed0.csv")
    assert read_labelled(test_file).texts == parts["test"].texts


def test_tsv_and_jsonl_with_custom_columns(tmp_path):
    tsv = tmp_path / "d.tsv"
    tsv.write_text("text\ty\nhello, world\t1\n\t0\nbad\t0\n", encoding="utf-8")
    assert read_labelled(tsv, "text", "y") == Labelled(["hello, world", "bad"], [1, 0])  # empty text skipped
    jl = tmp_path / "d.jsonl"
    jl.write_text("\n".join(json.dumps({"sentence": s, "stars": y}) for s, y in [("a", 2), ("b", 0)]) + "\n")
    assert read_labelled(jl, "sentence", "stars", binary=False).labels == [2, 0]


@pytest.mark.parametrize("content,message", [
    ("", "no data rows"),
    ("label,review\n", "no data rows"),
    ("label,text\n1,good\n", "no column 'review'; its columns are label, text"),
    ("label,review\n1,good\n2,odd\n", "labels must be 0/1"),
    ("label,review\npos,good\n", "is not an integer"),
    ("label,review\n1,\n0,  \n", "no rows with a non-empty"),
])
def test_bad_files_give_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PiaError, match=message) as err:
        read_labelled(path)
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(PiaError, match="not found"):
        read_labelled(tmp_path / "nope.csv")
    bad = tmp_path / "x.jsonl"
    bad.write_text("[1, 2]\n")
    with pytest.raises(PiaError, match="expected a JSON object"):
        read_labelled(bad)
