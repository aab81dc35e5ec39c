"""`pia text-cls`: a tiny end-to-end run, metrics checked against scikit-learn on the saved predictions,
evaluate/predict, exact resume, and the baselines (majority class, char TF-IDF + logistic regression) checked
against scikit-learn run here on the same split."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
from collections import Counter

import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from pytorch_in_action import cli, config
from pytorch_in_action.data.sentiment import read_labelled, split
from pytorch_in_action.recipes import text_classification as tc
from pytorch_in_action.train.checkpoint import load_checkpoint

POS = ["很好", "喜欢", "推荐", "满意", "不错"]
NEG = ["很差", "失望", "退货", "糟糕", "后悔"]
FILL = ["这本书", "质量", "物流", "服务", "价格", "包装", "内容"]


def write_reviews(path, n, seed, every=2):
    """`n` reviews; every `every`-th one is negative (label 0), the others positive."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["label", "review"])
        for i in range(n):
            y = int(i % every != 0)
            words = [rng.choice(FILL), rng.choice(POS if y else NEG), rng.choice(FILL)]
            w.writerow([y, "".join(words) + "。"])
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random BERT + WordPiece tokenizer saved as a Hugging Face folder, and tiny train/valid files."""
    from transformers import BertConfig, BertForMaskedLM

    from pytorch_in_action.recipes.mlm_pretrain import train_tokenizer

    root = tmp_path_factory.mktemp("textcls")
    train = write_reviews(root / "train.csv", 96, 0)
    write_reviews(root / "valid.csv", 40, 1)
    texts = [r["review"] for r in csv.DictReader(train.open(encoding="utf-8"))]
    tok = train_tokenizer(texts, 200, 1000)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    BertForMaskedLM(cfg).save_pretrained(root / "bert")
    tok.save_pretrained(root / "bert")
    return root


def args(tiny, out, *extra):
    return ["text-cls", "train", "--model", str(tiny / "bert"), "--data", str(tiny / "train.csv"),
            "--valid-data", str(tiny / "valid.csv"), "--out", str(out), "--batch-size", "16", "--max-length", "32",
            "--lr", "5e-3", "--no-progress", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def own_run(tiny):
    """One 4-epoch run of the project's loop, shared by the tests below."""
    out = tiny / "own"
    assert cli.main(args(tiny, out, "--epochs", "4")) == 0
    return out


def test_train_writes_correct_metrics_then_evaluate_and_predict(tiny, own_run, capsys):
    out = own_run
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3, 4]
    with (out / "val_predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    y, p = [int(r["label"]) for r in rows], [int(r["pred"]) for r in rows]
    assert len(rows) == 40
    last = lines[-1]
    assert last["val_accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert last["val_accuracy"] == pytest.approx(sum(a == b for a, b in zip(y, p)) / len(y), abs=1e-12)
    assert last["val_f1"] == pytest.approx(f1_score(y, p, pos_label=1), abs=1e-12)
    assert last["val_macro_f1"] == pytest.approx(f1_score(y, p, average="macro"), abs=1e-12)
    assert last["val_accuracy"] >= 0.9, "the tiny task is easy: training must have learnt it"
    # evaluate the saved model on the same file: the same numbers
    got = tc.evaluate(config.parse_args(tc.build_parser("evaluate"),
                                    ["--model", str(out), "--data", str(tiny / "valid.csv"), "--batch-size", "16",
                                     "--max-length", "32", "--device", "cpu"]))
    assert got["accuracy"] == pytest.approx(last["val_accuracy"], abs=1e-12)
    assert got["f1"] == pytest.approx(last["val_f1"], abs=1e-12)
    capsys.readouterr()
    assert cli.main(["text-cls", "predict", "--model", str(out), "--device", "cpu", "质量很好。", "物流很差。"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in printed] == ["positive", "negative"]
    assert all(0.5 <= float(line.split("\t")[1]) <= 1.0 for line in printed)


def test_resume_mid_epoch_is_exact(tiny, tmp_path, monkeypatch):
    extra = ("--epochs", "2", "--ckpt-every-steps", "2")
    full, broken = tmp_path / "full", tmp_path / "broken"
    assert cli.main(args(tiny, full, *extra)) == 0
    real, calls = tc.cls_loss, {"n": 0}

    def crash_on_9th_batch(model, batch):
        calls["n"] += 1
        if calls["n"] == 9:  # 6 batches per epoch: this is mid-epoch 2, after the step-8 checkpoint
            raise KeyboardInterrupt
        return real(model, batch)

    monkeypatch.setattr(tc, "cls_loss", crash_on_9th_batch)
    assert cli.main(args(tiny, broken, *extra)) == 130
    assert load_checkpoint(broken / "checkpoints" / "latest.pt")["global_step"] == 8
    monkeypatch.setattr(tc, "cls_loss", real)
    assert cli.main(args(tiny, broken, *extra, "--resume")) == 0
    a = load_checkpoint(full / "checkpoints" / "latest.pt")["model"]
    b = load_checkpoint(broken / "checkpoints" / "latest.pt")["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (full / "metrics.jsonl").read_text().splitlines()[-1].split('"lr"')[0] == \
        (broken / "metrics.jsonl").read_text().splitlines()[-1].split('"lr"')[0]


def test_length_bucketed_batches_learn_too(tiny, tmp_path):
    out = tmp_path / "bucketed"
    assert cli.main(args(tiny, out, "--epochs", "4", "--max-tokens", "96")) == 0
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] > 4 * 96 // 16, "a 96-token budget packs fewer than 16 of these texts per batch"
    assert last["val_accuracy"] >= 0.9
    assert cli.main(args(tiny, tmp_path / "small", "--max-tokens", "3")) == 2  # below the longest text
    assert not (tmp_path / "small").exists()


def test_baselines_stand_beside_the_model_on_the_same_split(tiny, tmp_path, capsys):
    """No --valid-data: the recipe splits --data by seed; both baselines must be fitted on exactly the model's
    training split and scored on exactly its validation split (checked with scikit-learn run here)."""
    data = write_reviews(tmp_path / "skewed.csv", 200, 3, every=3)  # two thirds positive
    out = tmp_path / "run"
    argv = ["text-cls", "train", "--model", str(tiny / "bert"), "--data", str(data), "--out", str(out),
            "--batch-size", "16", "--max-length", "32", "--epochs", "1", "--no-progress", "--device", "cpu"]
    assert cli.main(argv) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert "majority class" in summary and "TF-IDF" in summary
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    parts = split(read_labelled(data, binary=False), seed=0)
    with (out / "val_predictions.csv").open() as f:
        assert [int(r["label"]) for r in csv.DictReader(f)] == parts["valid"].labels  # the model's split
    train, valid = parts["train"], parts["valid"]
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)
    clf = LogisticRegression(C=4.0, max_iter=2000).fit(vectorizer.fit_transform(train.texts), train.labels)
    pred = clf.predict(vectorizer.transform(valid.texts))
    assert record["val_tfidf_accuracy"] == pytest.approx(accuracy_score(valid.labels, pred), abs=1e-12)
    assert record["val_tfidf_f1"] == pytest.approx(f1_score(valid.labels, pred), abs=1e-12)
    assert record["val_tfidf_macro_f1"] == pytest.approx(f1_score(valid.labels, pred, average="macro"), abs=1e-12)
    assert Counter(train.labels).most_common(1)[0][0] == 1
    assert record["val_majority_accuracy"] == pytest.approx(valid.labels.count(1) / len(valid), abs=1e-12)
    assert 0.6 < record["val_majority_accuracy"] < 0.7
    # evaluate on another file: the baselines are fitted on the run's training split, scored on that file
    other = read_labelled(tiny / "valid.csv", binary=False)
    got = tc.evaluate(config.parse_args(tc.build_parser("evaluate"),
                                    ["--model", str(out), "--data", str(tiny / "valid.csv"), "--batch-size", "16",
                                     "--max-length", "32", "--device", "cpu"]))
    pred = clf.predict(vectorizer.transform(other.texts))
    assert got["tfidf_accuracy"] == pytest.approx(accuracy_score(other.labels, pred), abs=1e-12)
    assert got["majority_accuracy"] == pytest.approx(other.labels.count(1) / len(other), abs=1e-12)
    printed = capsys.readouterr().out
    assert f"baselines fitted on the training split of {out}, {len(train)} texts" in printed


def test_bad_input_is_one_line(tiny, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,text\n1,好\n", encoding="utf-8")
    assert cli.main(["text-cls", "train", "--model", str(tiny / "bert"), "--data", str(bad), "--out",
                     str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pia text-cls: error:") and "no column 'review'" in err and "\n" not in err
    assert cli.main(["text-cls", "predict", "--model", str(tmp_path / "nope"), "x"]) == 2
    assert "cannot load a model" in capsys.readouterr().err
    assert cli.main(["text-cls", "predict", "--model", str(tiny / "bert"), "--input", str(tmp_path / "no.txt")]) == 2
    assert capsys.readouterr().err.strip() == f"pia text-cls: error: input file not found: {tmp_path / 'no.txt'}"


class _RunsCode:
    """Unpickling this runs a shell command: what a malicious pytorch_model.bin does."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_unsafe_or_truncated_weights_are_one_line(tiny, tmp_path, capsys):
    """A pytorch_model.bin that the weights-only loader refuses (and whose code never runs), or one cut short,
    stops train/evaluate/predict with one line naming the file and the reason, before anything is written."""
    from transformers import BertForSequenceClassification

    marker = tmp_path / "code-ran"
    good = BertForSequenceClassification.from_pretrained(tiny / "bert", num_labels=2).state_dict()
    folders = {}
    for name in ("unsafe", "cut"):
        folder = folders[name] = tmp_path / name
        shutil.copytree(tiny / "bert", folder)
        (folder / "model.safetensors").unlink()
    torch.save({"x": _RunsCode(f"touch {marker}")}, folders["unsafe"] / "pytorch_model.bin")
    torch.save(good, tmp_path / "full.bin")
    whole = (tmp_path / "full.bin").read_bytes()
    (folders["cut"] / "pytorch_model.bin").write_bytes(whole[: len(whole) // 2])
    reasons = {"unsafe": "refused by the weights-only loader (", "cut": "the file is cut short or corrupt ("}
    for name, folder in folders.items():
        weights = folder / "pytorch_model.bin"
        runs = {
            "train": ["text-cls", "train", "--model", str(folder), "--data", str(tiny / "train.csv"),
                      "--out", str(tmp_path / f"run-{name}"), "--no-progress", "--device", "cpu"],
            "evaluate": ["text-cls", "evaluate", "--model", str(folder), "--data", str(tiny / "valid.csv"),
                         "--device", "cpu"],
            "predict": ["text-cls", "predict", "--model", str(folder), "--device", "cpu", "质量很好。"],
        }
        for action, argv in runs.items():
            capsys.readouterr()
            assert cli.main(argv) == 2, (name, action)
            err = capsys.readouterr().err.strip()
            assert err.startswith(f"pia text-cls: error: cannot read weights from {weights}: {reasons[name]}"), err
            assert "\n" not in err and "Traceback" not in err
        assert not (tmp_path / f"run-{name}").exists()
    assert not marker.exists(), "the pickled command must never run"

