"""Stopping a run cleanly: on a signal (preemption, Ctrl-C) or when a time budget is spent.

Clusters preempt with a signal and a grace period before SIGKILL: SLURM sends SIGTERM (and, with
`--signal=USR1@<seconds>`, SIGUSR1 ahead of time), Kubernetes sends SIGTERM. `StopSignals` turns SIGTERM, SIGUSR1
and a first SIGINT into a request that the training loop reads at its next optimizer-step boundary, where it saves a
snapshot and stops; a second SIGINT raises `KeyboardInterrupt` at once (nothing more is saved). Under DDP every
rank reads the request (and the budget) through one collective per step, so all ranks stop after the same step.
"""

from __future__ import annotations

import signal
import threading
import time

import torch
import torch.distributed

from pytorch_in_action.train.distributed import DistEnv

STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")


class StopSignals:
    """A context manager that installs the handlers (main thread only) and restores the previous ones on exit."""

    def __init__(self) -> None:
        self.signum = 0  # the first stop signal received (0: none)
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in STOP_SIGNALS:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT and self.signum:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signum = self.signum or signum


class TimeBudget:
    """`minutes` of wall-clock time from `start()` (0: no budget)."""

    def __init__(self, minutes: float) -> None:
        self.minutes = minutes
        self._start = time.monotonic()

    def start(self) -> None:
        self._start = time.monotonic()

    @property
    def spent(self) -> bool:
        return self.minutes > 0 and time.monotonic() - self._start >= self.minutes * 60


def agreed_stop(signals: StopSignals, budget: TimeBudget, dist: DistEnv) -> str | None:
    """Why to stop after this optimizer step, the same answer on every rank: a signal's name, "time budget" or None.

    Collective under DDP (each rank must call it once per step): the ranks' requests are combined by a max."""
    signum, spent = signals.signum, budget.spent
    if dist.is_distributed:
        flags = torch.tensor([float(signum), float(spent)], device=dist.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        signum, spent = int(flags[0]), bool(flags[1])
    if signum:
        return signal.Signals(signum).name
    return "time budget" if spent else None
