"""`pia translate`: learning, exact resume, the CLI actions, bad input, and the classic tutorial bugs.

Each known weakness of earlier translation tutorials has a test here: a per-batch scheduler with a per-epoch
step size (the LR collapsed), staying in eval mode after the first evaluation, padding counted in the loss,
and no BLEU at all.
"""

import json
import math

import pytest
import sacrebleu
import torch
import torch.nn.functional as F

import pytorch_in_action.recipes.translation as rt
from pytorch_in_action.cli import main as cli
from pytorch_in_action.data.translation_batching import PairDataset, collate
from pytorch_in_action.data.translation_grammar import generate_pairs
from pytorch_in_action.data.translation_tokenizer import PAD_ID, build_tokenizers
from pytorch_in_action.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer

TINY = ["--n-pairs", "600", "--d-model", "32", "--n-head", "2", "--layers", "1", "--dim-feedforward", "64",
        "--max-tokens", "512", "--vocab-size", "400", "--val-bleu-sentences", "10", "--no-progress", "--no-test",
        "--amp", "off", "--beam", "2", "--lr", "3e-3", "--warmup-steps", "10"]
# a run small enough for a test yet long enough to learn the grammar's most frequent patterns
LEARN = ["--n-pairs", "3000", "--d-model", "64", "--n-head", "4", "--layers", "2", "--dim-feedforward", "128",
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
    cols = tmp_path / "d.jsonl"
    cols.write_text(json.dumps({"source": "Hi.", "target": "嗨。"}) + "\n", encoding="utf-8")
    _fails(capsys, ["translate", "train", "--hf", str(cols), "--out", str(out)], "expected columns 'en' and 'zh'")
    _fails(capsys, ["translate", "train", "--d-model", "130", "--n-head", "4", "--out", str(out)],
           "--d-model 130 is not divisible by --n-head 4")
    assert not out.exists()  # nothing half-written
    _fails(capsys, ["translate", "translate", "--checkpoint", str(tmp_path / "none.pt"), "Hi."], "not found")
    junk = tmp_path / "junk.pt"
    torch.save({"model": {}}, junk)
    _fails(capsys, ["translate", "evaluate", "--checkpoint", str(junk)], "not written by `pia translate train`")
    _fails(capsys, ["translate", "train", "--config", str(tmp_path / "missing.yaml")], "config file not found")
    _fails(capsys, ["translate", "train", "--no-shared-vocab", "--share-embeddings", "--out", str(out)],
           "--share-embeddings needs --shared-vocab")
