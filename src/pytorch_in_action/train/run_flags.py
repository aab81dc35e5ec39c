"""The run flags every training recipe shares, declared once with one meaning and one default.

`pia image train`, `pia translate train`, `pia text-cls train` and `pia mlm pretrain` call `add_run_flags`; a
recipe may change a default with `parser.set_defaults` (for example a longer `--minutes` budget), never the
meaning. Actions that only load a checkpoint (evaluate, predict, translate) take `add_device_flags`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pytorch_in_action.config import non_negative_float, non_negative_int
from pytorch_in_action.errors import PiaError, RunStopped
from pytorch_in_action.train.distributed import DistEnv
from pytorch_in_action.train.precision import AMP_CHOICES
from pytorch_in_action.train.run import RunDir

AMP_HELP = ("autocast dtype. auto: bf16 on CPUs whose bf16 matrix units are measured faster than float32 (AMX, "
            "AVX512_BF16) and on GPUs that support it, fp16 + GradScaler on older GPUs, float32 otherwise; a resumed "
            "run keeps the choice stored in its checkpoint")


def add_device_flags(group: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--device` and `--amp`, for every action that runs a model."""
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when present")
    group.add_argument("--amp", default="auto", choices=AMP_CHOICES, help=AMP_HELP)


def add_run_flags(parser: argparse.ArgumentParser, task: str, out_help: str | None = None) -> argparse._ArgumentGroup:
    """Declare the shared run flags on `parser` (in a group named "run") and return the group.

    `task` names the default run folder, runs/<task>/<timestamp>; `out_help` replaces that default's text.
    """
    run = parser.add_argument_group("run (the same flags in every recipe)")
    run.add_argument("--out", type=Path, help=out_help or f"run folder (default: runs/{task}/<timestamp>)")
    run.add_argument("--resume", nargs="?", const="latest", default=None, metavar="PATH",
                     help="continue the run in --out from checkpoints/latest.pt (a fresh start when it has none "
                          "yet, as for the first attempt of an elastic job), or from the checkpoint PATH")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (its files are deleted first); without --resume or "
                          "--overwrite a folder that holds a run is refused")
    run.add_argument("--seed", type=int, default=0,
                     help="seeds data order, splits, initial weights, augmentation and dropout: same seed, same "
                          "command, same weights on CPU")
    add_device_flags(run)
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm progress bars")
    run.add_argument("--ckpt-every-steps", type=non_negative_int, default=0,
                     help="also write checkpoints/latest.pt every N optimizer steps (0: at epoch ends only)")
    run.add_argument("--minutes", type=non_negative_float, default=0.0,
                     help="time budget: stop at the first optimizer step after N minutes of training, evaluate "
                          "and save as at an epoch end; --resume continues (0: no budget)")
    run.add_argument("--config", metavar="YAML", help="YAML file of option: value (flags given here override it)")
    parser.epilog = (f"Stopping: SIGTERM, SIGUSR1 or one Ctrl-C saves a snapshot at the next optimizer step and exits "
                     f"with code {RunStopped.exit_code} (continue with --resume); a second Ctrl-C exits at once (130).")
    return run


def resolve_out(args: argparse.Namespace, dist: DistEnv, task: str) -> Path:
    """`args.out`, or runs/<task>/<timestamp> (rank 0's clock, the same folder on every rank)."""
    if args.out is None:
        if args.resume == "latest":
            raise PiaError("--resume needs --out (the run folder to continue)")
        stamp = time.strftime("%Y%m%d-%H%M%S") if dist.is_main else None
        args.out = Path("runs") / task / str(dist.broadcast_object(stamp))
    return args.out


def open_run(args: argparse.Namespace, dist: DistEnv, tensorboard: bool = True) -> tuple[RunDir, Path | None]:
    """Open `args.out` as the run folder, honouring --resume and --overwrite; returns it and the checkpoint to
    resume from (None: a fresh start).

    Rank 0 locks and checks the folder; every rank learns the outcome, so a refused folder is one line on every
    rank rather than a hang of the others."""
    run, error = None, None
    if dist.is_main:
        try:
            run = RunDir(args.out, tensorboard=tensorboard, resume=args.resume, overwrite=args.overwrite)
        except PiaError as err:
            error = str(err)
    error = dist.broadcast_object(error)
    if error is not None:
        raise PiaError(error)
    run = run or RunDir(args.out, enabled=False, resume=args.resume)
    return run, run.resume_path(args.resume)
