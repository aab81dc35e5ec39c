"""Bad input to `pia image`: one clear line on stderr, exit code 2, no traceback, nothing half-written."""

import shutil

import pytest
import torch
from piatest import pia, write_tree

from pytorch_in_action.cli import main as cli

FAST = ["--epochs", "1", "--workers", "0", "--no-progress", "--batch-size", "4"]


def _fails(capsys, argv, *needles):
    code = cli(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def test_missing_folder(tmp_path, capsys):
    _fails(capsys, ["image", "train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), *FAST],
           "data folder not found", "nope")
    assert not (tmp_path / "o").exists()


def test_no_val_folder(tmp_path, capsys):
    root = write_tree(tmp_path / "d")
    import shutil

    shutil.rmtree(root / "val")
    _fails(capsys, ["image", "train", "--data", str(root), "--out", str(tmp_path / "o"), *FAST], "no val/ folder")


def test_empty_class_folder(tmp_path, capsys):
    root = write_tree(tmp_path / "d")
    (root / "train" / "empty").mkdir()
    (root / "val" / "empty").mkdir()
    (root / "val" / "empty" / "notes.txt").write_text("not an image")
    _fails(capsys, ["image", "train", "--data", str(root), *FAST], "has no image files", "empty")


def test_corrupt_image_stops_with_its_name_unless_skipped(tmp_path, capsys):
    root = write_tree(tmp_path / "d")
    (root / "train" / "a" / "broken.png").write_bytes(b"this is not a png")
    for workers in ("0", "1"):
        out = tmp_path / f"o{workers}"
        argv = ["image", "train", "--data", str(root), "--out", str(out), *FAST, "--workers", workers]
        _fails(capsys, argv, "cannot read image", "broken.png", "--skip-bad-images")
        assert not (out / "checkpoints" / "latest.pt").exists()
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        assert cli(["image", "train", "--data", str(root), "--out", str(tmp_path / "ok"), *FAST,
                    "--skip-bad-images"]) == 0


def test_unknown_arch_suggests(tmp_path, capsys):
    root = write_tree(tmp_path / "d")
    _fails(capsys, ["image", "train", "--data", str(root), "--arch", "resnet81", *FAST], "unknown --arch", "resnet18")


def test_checkpoint_from_another_model(tmp_path, capsys):
    root = write_tree(tmp_path / "d")
    out = tmp_path / "o"
    assert cli(["image", "train", "--data", str(root), "--out", str(out), *FAST, "--arch", "small_cnn_gn"]) == 0
    capsys.readouterr()
    _fails(capsys, ["image", "train", "--data", str(root), "--out", str(out), *FAST, "--epochs", "2", "--resume"],
           "arch='small_cnn_gn'", "arch='small_cnn'")
    _fails(capsys, ["image", "evaluate", "--data", str(root), "--checkpoint", str(tmp_path / "missing.pt")],
           "checkpoint not found")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    _fails(capsys, ["image", "evaluate", "--data", str(root), "--checkpoint", str(tmp_path / "junk.pt")],
           "cannot read checkpoint")
    state = torch.load(out / "checkpoints" / "latest.pt", weights_only=True)
    assert state["epoch"] == 1, "a refused resume must leave the checkpoint untouched"


def test_evaluate_reads_val_only_and_checks_the_class_names(tmp_path, capsys):
    root, out = write_tree(tmp_path / "d"), tmp_path / "o"
    assert cli(["image", "train", "--data", str(root), "--out", str(out), *FAST]) == 0
    shutil.rmtree(root / "train")  # evaluation needs no training images
    ckpt = str(out / "checkpoints" / "best.pt")
    capsys.readouterr()
    assert cli(["image", "evaluate", "--data", str(root), "--checkpoint", ckpt, "--workers", "0"]) == 0
    assert "val_top1" in capsys.readouterr().out
    (root / "val" / "b").rename(root / "val" / "c")
    _fails(capsys, ["image", "evaluate", "--data", str(root), "--checkpoint", ckpt, "--workers", "0"],
           "the checkpoint was trained on other classes than val/ holds: b, c")


def test_config_typo(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("epochs: 1\nlerning_rate: 0.1\n")
    _fails(capsys, ["image", "train", "--config", str(cfg)], "unknown config key 'lerning_rate'")
    cfg.write_text("epochs: 1\nlr: 0.05\nbatch-size: 4\nworkers: 0\nprogress: false\n")
    root = write_tree(tmp_path / "d")
    assert cli(["image", "train", "--config", str(cfg), "--data", str(root), "--out", str(tmp_path / "o")]) == 0
    assert "lr: 0.05" in (tmp_path / "o" / "config.yaml").read_text()


def test_an_image_size_the_model_cannot_take_stops_before_writing(tmp_path, capsys):
    root = write_tree(tmp_path / "d")
    out = tmp_path / "o"
    _fails(capsys, ["image", "train", "--data", str(root), "--out", str(out), *FAST, "--image-size", "2"],
           "--arch small_cnn cannot take 2px images (--image-size)")
    assert not out.exists()


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--epochs", "0", "an integer >= 1"), ("--batch-size", "-4", "an integer >= 1"), ("--lr", "0", "a number > 0"),
    ("--label-smoothing", "1.5", "a number from 0 to 1"), ("--workers", "-1", "an integer >= 0"),
])
def test_numbers_out_of_range_are_refused_by_name(tmp_path, capsys, flag, value, expected):
    out = tmp_path / "o"
    assert cli(["image", "train", "--out", str(out), *FAST, flag, value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"pia image train: error: argument {flag}: expected {expected}, got {value!r} "
                                "(see --help)"]
    assert not out.exists()


def test_real_process_exit_code_and_single_line(tmp_path):
    res = pia("image", "train", "--data", str(tmp_path / "missing"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"pia image: error: data folder not found: {tmp_path / 'missing'}"]


def test_unknown_task_and_action(capsys):
    assert cli(["imag"]) == 2
    assert cli(["image", "fly"]) == 2
    assert cli(["--help"]) == 0
