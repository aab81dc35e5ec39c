"""The `pia` command: `pia <task> <action> [options]`, one recipe module per task.

Recipe modules are imported lazily so that `pia --help` stays instant.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from pytorch_in_action.errors import PiaError, RunStopped

# task name -> (module, one-line description). Each module defines `main(argv: list[str]) -> int`.
TASKS: dict[str, tuple[str, str]] = {
    "image": ("pytorch_in_action.recipes.image_classification", "image classification (ImageNet layout)"),
    "translate": ("pytorch_in_action.recipes.translation", "English->Chinese translation with a Transformer"),
    "text-cls": ("pytorch_in_action.recipes.text_classification", "fine-tune a text classifier (label,review CSV)"),
    "mlm": ("pytorch_in_action.recipes.mlm_pretrain", "pretrain a small BERT with masked language modeling"),
}


def _usage() -> str:
    lines = ["usage: pia <task> <action> [options]", "", "tasks:"]
    for name, (module, text) in TASKS.items():
        if importlib.util.find_spec(module) is not None:
            lines.append(f"  {name:<10} {text}")
    lines += ["", "Run `pia <task> --help` for the actions of a task."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    if argv[0] == "--version":
        from pytorch_in_action import __version__

        print(__version__)
        return 0
    task, rest = argv[0], argv[1:]
    if task not in TASKS or importlib.util.find_spec(TASKS[task][0]) is None:
        print(f"pia: error: unknown task {task!r}; choose from {', '.join(TASKS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(TASKS[task][0])
    try:
        return int(module.main(rest) or 0)
    except PiaError as err:
        print(f"pia {task}: error: {err}", file=sys.stderr)
        return 2
    except RunStopped as stop:  # a signal; the snapshot is saved (every rank stops, rank 0 speaks)
        if os.environ.get("RANK", "0") == "0":
            print(f"pia {task}: {stop}", file=sys.stderr)
        return stop.exit_code
    except SystemExit as done:  # argparse: --help (0) or a bad flag (2, its one line already printed)
        if done.code is None or isinstance(done.code, int):
            return done.code or 0
        raise
    except KeyboardInterrupt:
        print(f"pia {task}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
