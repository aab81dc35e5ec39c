"""One configuration mechanism for every recipe: argparse flags, optionally layered over a YAML file.

`--config run.yaml` sets defaults from the file (keys are the long flag names, dashes or underscores);
flags given on the command line win. Unknown keys are an error with a suggestion, never ignored. Numbers typed
`positive_int`, `fraction`, ... are checked against their range whether they come from a flag or from the file,
and a bad flag is one line on stderr (exit code 2), like every other bad input.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pytorch_in_action.errors import PiaError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults in --help, except empty ones (None/False), whose meaning the help text states."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or action.help is None:
            return action.help or ""
        return super()._get_help_string(action)


class _Bounded:
    """An argparse `type` for a number with a lower bound (and an upper one for fractions): a bad value is
    refused when the flags are parsed, with the flag's name, instead of failing deep inside a run."""

    def __init__(self, kind: type, low: float, high: float | None, low_open: bool, what: str) -> None:
        self.kind, self.low, self.high, self.low_open, self.__name__ = kind, low, high, low_open, what

    def __call__(self, value: object) -> int | float:
        try:
            if isinstance(value, bool) or (self.kind is int and isinstance(value, float) and not value.is_integer()):
                raise ValueError
            number = self.kind(value)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {self.__name__}, got {value!r}") from None
        below = number <= self.low if self.low_open else number < self.low
        if below or (self.high is not None and number > self.high) or not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"expected {self.__name__}, got {value!r}")
        return number


positive_int = _Bounded(int, 1, None, False, "an integer >= 1")
non_negative_int = _Bounded(int, 0, None, False, "an integer >= 0")
positive_float = _Bounded(float, 0.0, None, True, "a number > 0")
non_negative_float = _Bounded(float, 0.0, None, False, "a number >= 0")
fraction = _Bounded(float, 0.0, 1.0, False, "a number from 0 to 1")


def _load_yaml(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise PiaError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise PiaError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise PiaError(f"config file {path} must be a mapping of option: value")
    return data


def _one_line_error(parser: argparse.ArgumentParser) -> None:
    """A bad flag ends in one line on stderr and exit code 2, like every other bad input (not the usage block)."""

    def error(message: str) -> None:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = error  # type: ignore[method-assign]


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse `argv` with `parser`, taking defaults from `--config FILE` when given."""
    _one_line_error(parser)
    if not any(a.dest == "config" for a in parser._actions):
        parser.add_argument("--config", metavar="YAML", help="YAML file of option: value (flags override it)")
    pre, _ = parser.parse_known_args(argv)
    from_file: dict[str, argparse.Action] = {}  # dest -> action of each option the file sets
    if getattr(pre, "config", None):
        values = _load_yaml(pre.config)
        known = {a.dest: a for a in parser._actions if a.dest not in {"help", "config"}}
        defaults = {}
        for key, value in values.items():
            dest = str(key).replace("-", "_")
            if dest not in known:
                close = difflib.get_close_matches(dest, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PiaError(f"unknown config key {key!r} in {pre.config}{hint}")
            defaults[dest], from_file[dest] = value, known[dest]
        parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    for dest, action in from_file.items():  # argparse converts string defaults only: check the file's numbers too
        value = getattr(args, dest)
        if isinstance(action.type, _Bounded) and value is not None:
            try:
                setattr(args, dest, action.type(value))
            except argparse.ArgumentTypeError as err:
                raise PiaError(f"{action.option_strings[-1]} in {pre.config}: {err}") from None
    return args


Action = tuple[str, Callable[[str], argparse.ArgumentParser], Callable[[argparse.Namespace], Any]]
# ^ one action of a recipe: (one-line help, build_parser(action name), run(parsed args))


def run_action(argv: list[str], command: str, actions: dict[str, Action], about: str = "") -> int:
    """`pia COMMAND ACTION [options]` for every recipe: parse ACTION's flags (`parse_args`) and run it. No action
    or -h lists the actions (exit 0); an unknown action is one line on stderr (exit 2)."""
    if argv and argv[0] in actions:
        _, build_parser, run = actions[argv[0]]
        run(parse_args(build_parser(argv[0]), argv[1:]))
        return 0
    if argv and argv[0] not in {"-h", "--help"}:
        print(f"pia {command}: error: unknown action {argv[0]!r}; choose {', '.join(actions)}", file=sys.stderr)
        return 2
    print(f"usage: pia {command} {{{','.join(actions)}}} [options]\n")
    print("\n".join(f"  {name:<10} {text}" for name, (text, _, _) in actions.items()))
    print(f"\n{about + ' ' if about else ''}Run `pia {command} <action> --help` for every option.")
    return 0


def to_yaml(args: argparse.Namespace) -> str:
    """The resolved configuration as YAML (what a run folder stores as config.yaml)."""
    plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items()) if k != "config"}
    return yaml.safe_dump(plain, sort_keys=True, allow_unicode=True)
