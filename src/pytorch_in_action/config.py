"""One configuration mechanism for every recipe: argparse flags, optionally layered over a YAML file.

`--config run.yaml` sets defaults from the file (keys are the long flag names, dashes or underscores);
flags given on the command line win. Unknown keys are an error with a suggestion, never ignored.
"""

from __future__ import annotations

import argparse
import difflib
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


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse `argv` with `parser`, taking defaults from `--config FILE` when given."""
    if not any(a.dest == "config" for a in parser._actions):
        parser.add_argument("--config", metavar="YAML", help="YAML file of option: value (flags override it)")
    pre, _ = parser.parse_known_args(argv)
    if getattr(pre, "config", None):
        values = _load_yaml(pre.config)
        known = {a.dest for a in parser._actions if a.dest not in {"help", "config"}}
        defaults = {}
        for key, value in values.items():
            dest = str(key).replace("-", "_")
            if dest not in known:
                close = difflib.get_close_matches(dest, sorted(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PiaError(f"unknown config key {key!r} in {pre.config}{hint}")
            defaults[dest] = value
        parser.set_defaults(**defaults)
    return parser.parse_args(argv)


def to_yaml(args: argparse.Namespace) -> str:
    """The resolved configuration as YAML (what a run folder stores as config.yaml)."""
    plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items()) if k != "config"}
    return yaml.safe_dump(plain, sort_keys=True, allow_unicode=True)
