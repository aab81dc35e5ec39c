"""Every command in the README is exercised: each `pia ...` line (also `python -m pytorch_in_action ...` behind
torchrun or srun) is parsed by its recipe's own parser, so a renamed or mistyped flag fails here, and every
`make` target it names exists. The recipes themselves run end to end, at small size, in tests/recipes; CI runs
`make test`, and `make demo`'s command is the one test_image_train checks for 95% accuracy."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from piatest import readme_commands

from pytorch_in_action.cli import TASKS
from pytorch_in_action.config import parse_args

ROOT = Path(__file__).resolve().parents[2]


def pia_argv(words: list[str]) -> list[str] | None:
    """The arguments after `pia` or `-m pytorch_in_action`, or None for other commands."""
    for i, w in enumerate(words):
        if w == "pia":
            return words[i + 1:]
        if w == "pytorch_in_action" and i and words[i - 1] == "-m":
            return words[i + 1:]
    return None


COMMANDS = readme_commands()
PIA = [argv for argv in map(pia_argv, COMMANDS) if argv is not None]


def test_the_readme_has_commands_for_every_recipe():
    assert {argv[0] for argv in PIA} == set(TASKS)
    assert any(w[:2] == ["make", "demo"] for w in COMMANDS) and any(w[:2] == ["make", "test"] for w in COMMANDS)


@pytest.mark.parametrize("argv", PIA, ids=[" ".join(a[:2]) for a in PIA])
def test_pia_command_parses(argv):
    task, action, rest = argv[0], argv[1], argv[2:]
    module = importlib.import_module(TASKS[task][0])
    parser = module.build_parser() if task == "mlm" else module.build_parser(action)
    if task == "mlm":
        assert action == "pretrain"
    parse_args(parser, rest)  # argparse exits (SystemExit) on an unknown flag or a bad value


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.M))
    for words in COMMANDS:
        if words[0] == "make":
            assert set(words[1:]) <= targets, words
