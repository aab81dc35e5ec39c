"""`pia mlm pretrain`: a tiny run gives a folder that Hugging Face's Auto classes load offline; masking rules."""

from __future__ import annotations

import json

import pytest
import torch

from pytorch_in_action import cli
from pytorch_in_action.data.masking import mask_tokens


def tiny_argv(tmp_path, *extra: str) -> list[str]:
    """`pia mlm pretrain` of a 1-layer, 32-wide BERT on 80 short texts, writing to tmp_path/mlm."""
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(f"第{i}本书很好看，推荐给大家。物流很快{i % 7}" for i in range(80)), encoding="utf-8")
    return ["mlm", "pretrain", "--data", str(data), "--out", str(tmp_path / "mlm"), "--layers", "1", "--hidden", "32",
            "--heads", "2", "--batch-size", "8", "--max-length", "32", "--vocab-size", "300", "--eval-texts", "8",
            "--no-progress", "--device", "cpu", *extra]


def test_tiny_pretrain_gives_a_loadable_hugging_face_folder(tmp_path, monkeypatch, capsys):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("PIA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "mlm"
    assert cli.main(tiny_argv(tmp_path, "--steps", "4", "--amp", "bf16", "--snapshot-every-steps", "2")) == 0
    closing = capsys.readouterr().out.strip().splitlines()[-1]
    assert "held-out masked tokens predicted right" in closing and "most frequent training token" in closing
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 1 and model.config.hidden_size == 32
    ids = tok("本书很好看")["input_ids"]
    assert tok.unk_token_id not in ids, "Chinese characters of the corpus must be in the vocabulary"
    assert tok.convert_ids_to_tokens(ids)[1:-1] == list("本书很好看")
    with torch.no_grad():
        logits = model(**tok("推荐给大家", return_tensors="pt")).logits
    assert logits.shape[-1] == len(tok)
    assert AutoModelForSequenceClassification.from_pretrained(out, num_labels=2).config.num_labels == 2
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 4 and record["val_loss"] > 0
    assert 0 < record["val_unigram_accuracy"] < 1 and 0 <= record["val_mlm_accuracy"] <= 1
    snaps = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snaps == ["step-000002", "step-000004"]  # no half-written .tmp folder left behind
    info = json.loads((out / "snapshots" / "step-000002" / "snapshot.json").read_text())
    assert info["step"] == 2 and info["minutes"] > 0 and info["val_loss"] > 0
    assert AutoModelForMaskedLM.from_pretrained(out / "snapshots" / "step-000002").config.hidden_size == 32


def test_the_cosine_spans_the_steps_the_time_budget_holds(tmp_path, capsys):
    """--minutes sizes the schedule from a few timed steps (far fewer than --steps here), and the run ends with it."""
    from pytorch_in_action.train.checkpoint import load_checkpoint

    out = tmp_path / "mlm"
    assert cli.main(tiny_argv(tmp_path, "--steps", "100000", "--minutes", "0.05", "--amp", "off")) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("schedule:"))
    planned = int(line.split("about ")[1].split(" ")[0])
    state = load_checkpoint(out / "checkpoints" / "latest.pt")
    assert state["scheduler"]["lr_lambdas"][0]["total"] == planned < 100000
    assert 0 < state["global_step"] <= planned  # the run ends with its schedule (or the budget), not at --steps


def test_negative_snapshot_interval_is_one_line_error(tmp_path, capsys):
    out = tmp_path / "mlm"
    argv = ["mlm", "pretrain", "--out", str(out), "--snapshot-every-steps", "-1", "--no-progress", "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--snapshot-every-steps" in err and "Traceback" not in err
    assert not out.exists()


def test_missing_data_is_one_line_error_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "mlm"
    argv = ["mlm", "pretrain", "--out", str(out), "--data", str(tmp_path / "none.txt"), "--no-progress", "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"pia mlm: error: data file not found: {tmp_path / 'none.txt'}"]
    assert not out.exists()


def test_loss_on_masked_positions_equals_hugging_face_loss():
    from transformers import BertConfig, BertForMaskedLM

    from pytorch_in_action.recipes.mlm_pretrain import MaskedPositionsMLM, mlm_loss

    torch.manual_seed(0)
    hf = BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=32)).eval()
    ids = torch.randint(5, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 1], labels[1, 4], labels[2, 0], labels[2, 8] = 7, 9, 11, 13
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    loss, n = mlm_loss(MaskedPositionsMLM(hf), batch)
    assert n == 4
    torch.testing.assert_close(loss, hf(**batch).loss, rtol=1e-6, atol=1e-6)


def test_packing_keeps_every_token_once_and_words_apart():
    from pytorch_in_action.data.tokenized import TokenizedTexts, pack

    CLS, SEP = 2, 3
    texts = [[CLS, 10, 11, SEP], [CLS, 12, SEP], [CLS, 13, 14, 15, 16, SEP]]
    words = [[-1, 0, 0, -1], [-1, 0, -1], [-1, 0, 1, 1, 2, -1]]
    packed = pack(TokenizedTexts(texts, word_ids=words), max_length=4, cls_id=CLS)
    assert all(row[0] == CLS and len(row) <= 4 for row in packed.input_ids)
    assert [t for row in packed.input_ids for t in row[1:]] == [t for ids in texts for t in ids[1:]]
    stream = [w for row in packed.word_ids for w in row[1:]]
    assert stream == [0, 0, -1, 1, -1, 2, 3, 3, 4, -1]  # the second text's word 0 became word 1, and so on
    assert [len(r) for r in packed.input_ids] == [len(w) for w in packed.word_ids]


def test_masking_whole_words_and_80_10_10():
    torch.manual_seed(0)
    B, T = 64, 40
    ids = torch.randint(5, 100, (B, T))
    special = torch.zeros(B, T, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    words = (torch.arange(T) // 3).expand(B, T).masked_fill(special, -1)  # words of 3 tokens
    g = torch.Generator().manual_seed(1)
    inputs, labels = mask_tokens(ids, special, words, mask_id=4, vocab_size=100, generator=g)
    chosen = labels != -100
    assert not chosen[special].any()
    assert torch.equal(labels[chosen], ids[chosen])
    for b in range(B):  # a word is masked entirely or not at all
        for w in range(1, T // 3):
            part = chosen[b][words[b] == w]
            assert bool(part.all()) or not bool(part.any())
    frac = chosen.float().sum(1) / (~special).float().sum(1)
    assert frac.mean().item() == pytest.approx(0.15, abs=0.03)
    masked = (inputs == 4) & chosen
    kept = (inputs == ids) & chosen
    assert masked.sum() / chosen.sum() == pytest.approx(0.8, abs=0.05)
    assert kept.sum() / chosen.sum() == pytest.approx(0.1 + 0.1 / 95, abs=0.04)


def test_unigram_guess_is_scored_on_the_same_masked_positions():
    """The guess is the most frequent non-special training token; a model that always answers it scores exactly
    the unigram accuracy, on the very positions the model's accuracy is counted on."""
    from pytorch_in_action.data.masking import MaskingCollate
    from pytorch_in_action.data.tokenized import TokenizedTexts
    from pytorch_in_action.recipes.mlm_pretrain import make_eval_fn, most_frequent_token, train_tokenizer
    from pytorch_in_action.train.distributed import DistEnv

    texts = [f"好好好书{i % 5}很好看推荐" for i in range(40)]
    tok = train_tokenizer(texts, 60, 100)
    train = TokenizedTexts(tok(texts)["input_ids"])
    guess = most_frequent_token(train, tok.all_special_ids)
    assert tok.convert_ids_to_tokens(guess) == "好"  # 4 per text; [CLS]/[SEP] (1 each) are never the guess

    class AlwaysGuess(torch.nn.Module):
        def forward(self, input_ids, attention_mask, labels):
            keep = labels != -100
            logits = torch.zeros(int(keep.sum()), len(tok))
            logits[:, guess] = 1.0
            return logits, labels[keep]

    valid = TokenizedTexts(tok([f"好书{i}很好" for i in range(30)])["input_ids"])
    evaluate = make_eval_fn(valid, MaskingCollate(tok, 0.3), DistEnv(), seed=0, batch_size=8, guess_id=guess)
    metrics = evaluate(AlwaysGuess())
    assert metrics["val_mlm_accuracy"] == metrics["val_unigram_accuracy"]
    assert 0 < metrics["val_unigram_accuracy"] < 1

