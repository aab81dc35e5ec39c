"""`pia mlm pretrain`: a tiny run gives a folder that Hugging Face's Auto classes load offline; masking rules."""

from __future__ import annotations

import json

import pytest
import torch

from pytorch_in_action import cli
from pytorch_in_action.recipes.masking import mask_tokens


def test_tiny_pretrain_gives_a_loadable_hugging_face_folder(tmp_path, monkeypatch):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    monkeypatch.setenv("PIA_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "texts.txt"
    data.write_text("\n".join(f"第{i}本书很好看，推荐给大家。物流很快{i % 7}" for i in range(80)), encoding="utf-8")
    out = tmp_path / "mlm"
    argv = ["mlm", "pretrain", "--data", str(data), "--out", str(out), "--steps", "4", "--layers", "1",
            "--hidden", "32", "--heads", "2", "--batch-size", "8", "--max-length", "32", "--vocab-size", "300",
            "--eval-texts", "8", "--no-progress", "--device", "cpu", "--amp", "bf16"]
    assert cli.main(argv) == 0
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
