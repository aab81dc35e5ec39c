"""Flags and YAML files: numbers out of range are refused when parsed, naming the flag and the file."""

import argparse

import pytest

from pytorch_in_action.config import (
    fraction,
    non_negative_float,
    non_negative_int,
    parse_args,
    positive_float,
    positive_int,
    run_action,
)
from pytorch_in_action.errors import PiaError


@pytest.mark.parametrize(("check", "good", "bad"), [
    (positive_int, ["1", "64", 3, 2.0], ["0", "-1", "1.5", "x", 1.5, True]),
    (non_negative_int, ["0", "7"], ["-1", "0.5"]),
    (positive_float, ["1e-4", "0.1", 2], ["0", "-0.1", "nan", "inf", "x"]),
    (non_negative_float, ["0", "0.5"], ["-1e-9"]),
    (fraction, ["0", "0.1", "1"], ["-0.1", "1.01"]),
])
def test_bounded_numbers(check, good, bad):
    for value in good:
        assert check(value) == float(value)
    for value in bad:
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected {check.__name__}, got"):
            check(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pia test")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--lr", type=positive_float, default=0.1)
    p.add_argument("--minutes", type=positive_float, default=None)
    return p


def test_flags_are_checked_by_argparse(capsys):
    assert parse_args(_parser(), ["--epochs", "2"]).epochs == 2
    with pytest.raises(SystemExit) as caught:
        parse_args(_parser(), ["--epochs", "0"])
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "pia test: error: argument --epochs: expected an integer >= 1, got '0' (see --help)"]


def test_numbers_from_a_config_file_are_checked_too(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("epochs: 4\nlr: 5.0e-4\n")
    args = parse_args(_parser(), ["--config", str(cfg)])
    assert (args.epochs, args.lr, args.minutes) == (4, 5e-4, None)
    cfg.write_text("epochs: 0\n")
    with pytest.raises(PiaError, match=r"--epochs in .*run\.yaml: expected an integer >= 1, got 0$"):
        parse_args(_parser(), ["--config", str(cfg)])
    assert parse_args(_parser(), ["--config", str(cfg), "--epochs", "5"]).epochs == 5  # the flag wins
    cfg.write_text("lr: 1e-3\n")  # YAML reads this as a string: argparse converts it like a flag
    assert parse_args(_parser(), ["--config", str(cfg)]).lr == 1e-3


def test_run_action_lists_refuses_and_runs(capsys):
    """A recipe's action dispatch: no action or -h lists the actions (exit 0), an unknown one is one line on
    stderr (exit 2), a known one runs with its parsed flags."""
    ran = []

    def build_parser(action):
        parser = argparse.ArgumentParser(prog=f"pia demo {action}")
        parser.add_argument("--steps", type=positive_int, default=3)
        return parser

    actions = {"train": ("train it", build_parser, ran.append), "check": ("check it", build_parser, ran.append)}
    for argv in ([], ["-h"], ["--help"]):
        assert run_action(argv, "demo", actions, about="About.") == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: pia demo {train,check} [options]") and "  check      check it" in out
        assert out.rstrip().endswith("About. Run `pia demo <action> --help` for every option.")
    assert run_action(["tain"], "demo", actions) == 2
    err = capsys.readouterr().err
    assert err == "pia demo: error: unknown action 'tain'; choose train, check\n"
    assert run_action(["check", "--steps", "5"], "demo", actions) == 0 and ran[0].steps == 5
    with pytest.raises(SystemExit) as bad:  # the flags are checked as every recipe checks them: one line, exit 2
        run_action(["train", "--steps", "0"], "demo", actions)
    assert bad.value.code == 2 and len(ran) == 1
