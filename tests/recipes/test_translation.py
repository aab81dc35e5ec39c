"""`pia translate`: learning (synthetic grammar and a slice of the real corpus), exact resume, the time budget,
the CLI actions, bad input, and the classic tutorial bugs.

Each known weakness of earlier translation tutorials has a test here: a per-batch scheduler with a per-epoch
step size (the LR collapsed), staying in eval mode after the first evaluation, padding counted in the loss,
and no BLEU at all.
"""

import gzip
import io
import json
import math
import re
import time

import pytest
import sacrebleu
import torch
import torch.nn.functional as F

import pytorch_in_action.recipes.translation as rt
from pytorch_in_action.cli import main as cli
from pytorch_in_action.data.translation import TATOEBA
from pytorch_in_action.data.translation_batching import PairDataset, collate
from pytorch_in_action.data.translation_grammar import generate_pairs
from pytorch_in_action.data.translation_tokenizer import PAD_ID, build_tokenizers
from pytorch_in_action.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer

# the synthetic grammar with the settings it was tuned on (the defaults are for the bundled real corpus)
SYNTH = ["--data", "synthetic", "--shared-vocab", "--share-embeddings", "--sched", "inverse_sqrt", "--minutes", "0"]
TINY = [*SYNTH, "--n-pairs", "600", "--d-model", "32", "--n-head", "2", "--layers", "1", "--dim-feedforward", "64",
        "--max-tokens", "512", "--vocab-size", "400", "--val-bleu-sentences", "10", "--no-progress", "--no-test",
        "--amp", "off", "--beam", "2", "--lr", "3e-3", "--warmup-steps", "10"]
# a run small enough for a test yet long enough to learn the grammar's most frequent patterns
LEARN = [*SYNTH, "--n-pairs", "3000", "--d-model", "64", "--n-head", "4", "--layers", "2", "--dim-feedforward", "128",
         "--max-tokens", "1024", "--vocab-size", "600", "--val-bleu-sentences", "100", "--no-progress", "--no-test",
         "--amp", "bf16", "--lr", "3e-3", "--warmup-steps", "30", "--epochs", "6"]


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def learned(tmp_path_factory, pia_cache):
    out = tmp_path_factory.mktemp("translate") / "run"
    assert cli(["translate", "train", "--out", str(out), *LEARN]) == 0
    return out


@pytest.mark.slow
def test_a_small_run_learns(learned, capsys):
    """Test BLEU of the trained model is far above the untrained model's (which is about 0)."""
    model, src_tok, tgt_tok, _ = rt.load_for_inference(learned / "checkpoints/best.pt", torch.device("cpu"))
    pairs = [line.split("\t") for line in (learned / "test.tsv").read_text(encoding="utf-8").splitlines()][:100]
    srcs, refs = [p[0] for p in pairs], [p[1] for p in pairs]
    trained = rt.bleu(rt.translate_texts(model, src_tok, tgt_tok, srcs), refs)
    torch.manual_seed(0)
    untrained = Seq2SeqTransformer(model.cfg).eval()
    base = rt.bleu(rt.translate_texts(untrained, src_tok, tgt_tok, srcs), refs)
    assert base < 2 and trained > 40, (base, trained)
    bleus = [m["val_bleu"] for m in _metrics(learned)]
    assert bleus[-1] > bleus[0] + 30, bleus  # BLEU is computed at every evaluation, and rises


def test_cli_translate_and_evaluate(learned, capsys):
    ckpt = str(learned / "checkpoints/best.pt")
    assert cli(["translate", "translate", "--checkpoint", ckpt, "Where is the station?", "I like cats."]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(lines)
    assert cli(["translate", "evaluate", "--checkpoint", ckpt, "--max-sentences", "40", "--beam", "3"]) == 0
    out = capsys.readouterr().out
    assert "bleu_greedy" in out and "bleu_beam3" in out and "test_token_acc" in out


def test_cli_evaluate_scores_every_line_of_an_outside_file(learned, tmp_path, capsys):
    """`evaluate --data` scores all lines (greedy, beam, baseline), converts Traditional references to Simplified
    as the training did (and says so), and writes the translations beside the scores."""
    test = (learned / "test.tsv").read_text(encoding="utf-8").splitlines()[:6]
    data = tmp_path / "outside.tsv"
    data.write_text("\n".join(test + ["We like cats.\t我們喜歡貓。", "Where is the station?\t車站在哪裡?"]) + "\n",
                    encoding="utf-8")
    ckpt = str(learned / "checkpoints/best.pt")
    assert cli(["translate", "evaluate", "--checkpoint", ckpt, "--data", str(data), "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert "on 8 pairs" in out and "converted to Simplified Chinese" in out
    scores = json.loads((learned / "eval/outside.json").read_text())
    assert scores["sentences"] == 8
    assert {"bleu_greedy", "bleu_beam2", "bleu_baseline", "chrf_greedy", "chrf_beam2", "chrf_baseline"} <= set(scores)
    rows = [line.split("\t") for line in (learned / "eval/outside.tsv").read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["english", "reference", "greedy", "beam2", "baseline"] and len(rows) == 9
    assert rows[-2][1] == "我们喜欢猫。" and rows[-1][1] == "车站在哪里?"
    hyps = [r[2] for r in rows[1:]]
    assert scores["bleu_greedy"] == pytest.approx(rt.bleu(hyps, [r[1] for r in rows[1:]]))
    assert cli(["translate", "evaluate", "--checkpoint", ckpt, "--data", str(data), "--no-to-simplified",
                "--beam", "1", "--results-dir", str(tmp_path / "res")]) == 0
    assert "scored as written" in capsys.readouterr().out
    rows = (tmp_path / "res/outside.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[-2].split("\t")[1] == "我們喜歡貓。" and rows[0] == "english\treference\tgreedy\tbaseline"


def test_cli_translate_reads_stdin(learned, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("Where is the station?\n\nI like cats.\n"))
    assert cli(["translate", "translate", "--checkpoint", str(learned / "checkpoints/best.pt"), "--beam", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(lines)


@pytest.mark.slow
def test_a_run_on_a_slice_of_the_real_corpus_learns(tmp_path, pia_cache, capsys):
    """The shortest 3,000 pairs of the bundled Tatoeba file (it is ordered short to long): a small model's test
    BLEU ends far above the untrained model's, and the word-by-word baseline is reported beside it."""
    with gzip.open(TATOEBA, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()[:3000]
    data = tmp_path / "short.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    assert cli(["translate", "train", "--data", str(data), "--out", str(out), "--d-model", "64", "--n-head", "4",
                "--layers", "2", "--dim-feedforward", "128", "--vocab-size", "1000", "--max-tokens", "512",
                "--epochs", "12", "--minutes", "0", "--lr", "3e-3", "--warmup-steps", "30", "--dropout", "0.1",
                "--val-bleu-sentences", "50", "--beam", "1", "--amp", "off", "--no-progress"]) == 0
    assert "word-by-word dictionary baseline" in capsys.readouterr().out
    result = json.loads((out / "test_results.json").read_text())
    model, src_tok, tgt_tok, _ = rt.load_for_inference(out / "checkpoints/best.pt", torch.device("cpu"))
    pairs = [line.split("\t") for line in (out / "test.tsv").read_text(encoding="utf-8").splitlines()]
    torch.manual_seed(0)
    untrained = rt.bleu(rt.translate_texts(Seq2SeqTransformer(model.cfg).eval(), src_tok, tgt_tok,
                                           [p[0] for p in pairs]), [p[1] for p in pairs])
    assert result["sentences"] == len(pairs) > 100
    assert untrained < 2 and result["bleu_greedy"] > untrained + 8, (untrained, result)  # measured: 0 vs 13.6


def test_lr_follows_the_per_step_schedule(learned):
    """The LR is stepped per optimizer step: warm-up then inverse square root, never collapsing to ~0."""
    peak, warm = 3e-3, 30
    records = _metrics(learned)
    for r in records:
        s = r["step"]
        assert math.isclose(r["lr"], peak * min((s + 1) / warm, math.sqrt(warm / (s + 1))), rel_tol=1e-9), r
    assert records[-1]["lr"] > 0.1 * peak


def test_training_mode_restored_after_evaluation(tmp_path, pia_cache, monkeypatch):
    seen = {"train": [], "eval": []}
    loss, evaluate = rt.seq2seq_loss, rt.loss_and_accuracy

    def spy_loss(model, batch, smoothing=0.0):
        seen["train"].append(model.training)
        return loss(model, batch, smoothing)

    def spy_eval(model, loader, device):
        seen["eval"].append(model.training)
        return evaluate(model, loader, device)

    monkeypatch.setattr(rt, "seq2seq_loss", spy_loss)
    monkeypatch.setattr(rt, "loss_and_accuracy", spy_eval)
    assert cli(["translate", "train", "--out", str(tmp_path / "r"), *TINY, "--epochs", "2",
                "--eval-every-steps", "2"]) == 0
    assert len(seen["eval"]) >= 3 and not any(seen["eval"])  # evaluated in eval mode (dropout off) ...
    assert len(seen["train"]) > 4 and all(seen["train"])  # ... and every training step after it in train mode


def test_loss_ignores_padding():
    """Mean over real target tokens: equal to the token-weighted mean of unpadded per-sentence losses."""
    pairs = generate_pairs(40, seed=1)
    src_tok, tgt_tok = build_tokenizers(pairs, vocab_size=300)
    ds = PairDataset(pairs[:6], src_tok, tgt_tok)
    torch.manual_seed(0)
    model = Seq2SeqTransformer(Seq2SeqConfig(src_tok.get_vocab_size(), tgt_tok.get_vocab_size(), d_model=16,
                                             n_head=2, num_encoder_layers=1, num_decoder_layers=1,
                                             dim_feedforward=32, dropout=0.0)).double()
    batch = collate([ds[i] for i in range(6)])
    loss, n = rt.seq2seq_loss(model, batch)
    total, count = 0.0, 0
    for i in range(6):
        one = collate([ds[i]])
        logits = model(one["src"], one["tgt_in"])
        total += float(F.cross_entropy(logits[0], one["tgt_out"][0], reduction="sum"))
        count += one["tgt_out"].numel()
    assert n == count == int((batch["tgt_out"] != PAD_ID).sum())
    torch.testing.assert_close(loss.item(), total / count, rtol=1e-9, atol=0)
    wider = {k: torch.cat([v, torch.full((6, 5), PAD_ID)], 1) for k, v in batch.items()}
    torch.testing.assert_close(rt.seq2seq_loss(model, wider)[0], loss, rtol=1e-9, atol=0)


def test_bleu_is_sacrebleu_with_chinese_tokenisation():
    hyps, refs = ["我喜欢猫。", "他昨天买了一本书。"], ["我喜欢猫。", "他昨天买了两本书。"]
    want = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score
    assert rt.bleu(hyps, refs) == pytest.approx(want) and 40 < want < 100
    assert rt.bleu(refs, refs) == pytest.approx(100.0)


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, pia_cache, monkeypatch):
    common = ["translate", "train", *TINY, "--epochs", "2", "--ckpt-every-steps", "3", "--dropout", "0.3"]
    assert cli([*common, "--out", str(tmp_path / "ref")]) == 0
    ref = _state(tmp_path / "ref/checkpoints/latest.pt")
    assert ref["global_step"] > 8

    calls, loss = [0], rt.seq2seq_loss

    def crash_after_7(model, batch, smoothing=0.0):
        calls[0] += 1
        if calls[0] == 8:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of the first epoch
        return loss(model, batch, smoothing)

    monkeypatch.setattr(rt, "seq2seq_loss", crash_after_7)
    assert cli([*common, "--out", str(tmp_path / "res")]) == 130
    assert _state(tmp_path / "res/checkpoints/latest.pt")["global_step"] == 6
    monkeypatch.setattr(rt, "seq2seq_loss", loss)
    assert cli([*common, "--out", str(tmp_path / "res"), "--resume"]) == 0
    got = _state(tmp_path / "res/checkpoints/latest.pt")
    assert got["global_step"] == ref["global_step"]
    for key, value in ref["model"].items():
        assert torch.equal(value, got["model"][key]), key
    for pid, st in ref["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(got["optimizer"]["state"][pid][k])), (pid, k)
    drop = {"tokens_per_sec"}
    strip = [{k: v for k, v in r.items() if k not in drop} for r in _metrics(tmp_path / "ref")]
    assert strip == [{k: v for k, v in r.items() if k not in drop} for r in _metrics(tmp_path / "res")]


def test_minutes_budget_stops_on_time_and_the_run_resumes(tmp_path, pia_cache, capsys):
    """`--minutes` ends training at a step boundary well before `--epochs` would (evaluating and saving), and
    `--resume` continues from that snapshot; the warmup + cosine schedule spans the steps the budget allows,
    estimated before training, and a resumed run keeps that length."""
    out = tmp_path / "r"
    common = ["translate", "train", *TINY, "--sched", "warmup_cosine", "--epochs", "500", "--out", str(out)]
    start = time.monotonic()
    assert cli([*common, "--minutes", "0.05"]) == 0
    assert time.monotonic() - start < 120
    printed = capsys.readouterr().out
    estimated = int(re.search(r"so about (\d+) steps", printed).group(1))
    first = _state(out / "checkpoints/latest.pt")
    assert 0 < first["global_step"] < 500 * 16  # 16 batches per epoch: stopped by the budget, not by --epochs
    assert first["scheduler"]["lr_lambdas"][0]["total"] == estimated
    assert "val_bleu" in _metrics(out)[-1]  # evaluated when the budget stopped it
    assert cli([*common, "--minutes", "0.05", "--resume"]) == 0
    second = _state(out / "checkpoints/latest.pt")
    assert second["global_step"] > first["global_step"]
    assert second["scheduler"]["lr_lambdas"][0]["total"] == estimated


# -- bad input: one clear line, exit code 2 -------------------------------------------------------------------


def _fails(capsys, argv, *needles):
    code = cli(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


def test_bad_inputs(tmp_path, capsys, pia_cache):
    out = tmp_path / "o"
    _fails(capsys, ["translate", "train", "--data", str(tmp_path / "nope.tsv"), "--out", str(out)], "not found",
           "nope.tsv")
    bad = tmp_path / "bad.tsv"
    bad.write_text("Hi.\t嗨。\n\nRun!\t跑！\nno tab on this line\n", encoding="utf-8")
    _fails(capsys, ["translate", "train", "--data", str(bad), "--out", str(out)], f"{bad}:4:", "no tab")
    bad.write_text("Hi.\t嗨。\nRun!\t \n", encoding="utf-8")
    _fails(capsys, ["translate", "train", "--data", str(bad), "--out", str(out)], f"{bad}:2:",
           "the Chinese side is empty")
    bad.write_text("Hi.\t嗨。\n\t跑！\n", encoding="utf-8")
    _fails(capsys, ["translate", "evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data", str(bad)],
           f"{bad}:2:", "the English side is empty")
    _fails(capsys, ["translate", "evaluate", "--checkpoint", str(tmp_path / "none.pt"), "--data",
                    str(tmp_path / "absent.tsv")], "not found", "absent.tsv")
    cols = tmp_path / "d.jsonl"
    cols.write_text(json.dumps({"source": "Hi.", "target": "嗨。"}) + "\n", encoding="utf-8")
    _fails(capsys, ["translate", "train", "--hf", str(cols), "--out", str(out)], "expected columns 'en' and 'zh'")
    _fails(capsys, ["translate", "train", "--d-model", "130", "--n-head", "4", "--out", str(out)],
           "--d-model 130 is not divisible by --n-head 4")
    assert not out.exists()  # nothing half-written
    _fails(capsys, ["translate", "translate", "--checkpoint", str(tmp_path / "none.pt"), "Hi."], "not found")
    junk = tmp_path / "junk.pt"
    torch.save({"model": {}}, junk)
    good = tmp_path / "good.tsv"
    good.write_text("Hi.\t嗨。\n", encoding="utf-8")
    _fails(capsys, ["translate", "evaluate", "--checkpoint", str(junk), "--data", str(good)],
           "not written by `pia translate train`")
    _fails(capsys, ["translate", "evaluate", "--checkpoint", str(junk)], "no --data given and no test split")
    _fails(capsys, ["translate", "train", "--config", str(tmp_path / "missing.yaml")], "config file not found")
    _fails(capsys, ["translate", "train", "--no-shared-vocab", "--share-embeddings", "--out", str(out)],
           "--share-embeddings needs --shared-vocab")
