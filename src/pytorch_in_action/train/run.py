"""The run folder every recipe writes: config.yaml, metrics.jsonl, tb/ (TensorBoard), checkpoints/.

Only the main rank writes; on other ranks every method is a no-op, so callers need no rank checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pytorch_in_action.errors import PiaError


class RunDir:
    def __init__(self, root: str | os.PathLike, enabled: bool = True, tensorboard: bool = True):
        self.root = Path(root)
        self.enabled = enabled
        self._tb_enabled = tensorboard
        self._writer = None
        if enabled:
            if self.root.exists() and not self.root.is_dir():
                raise PiaError(f"the run folder {self.root} is a file")
            try:
                self.checkpoints.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise PiaError(f"cannot create the run folder {self.root}: {err.strerror or err}") from None
            for stale in self.checkpoints.glob(".*.tmp-*"):  # left by a process killed while saving
                stale.unlink(missing_ok=True)

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def latest(self) -> Path:
        return self.checkpoints / "latest.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def metrics_file(self) -> Path:
        return self.root / "metrics.jsonl"

    def resume_path(self, resume: str | None, announce: bool = True) -> Path | None:
        """What `--resume [PATH]` means: "latest" -> checkpoints/latest.pt when it exists (a fresh start
        otherwise, as for the first attempt of an elastic job), a path -> that file, None -> no resume."""
        if resume is None:
            return None
        if resume != "latest":
            if not Path(resume).is_file():  # before anything of the run is written
                raise PiaError(f"checkpoint not found: {resume}")
            return Path(resume)
        if self.latest.exists():
            return self.latest
        if announce and self.enabled:
            print(f"no checkpoint in {self.checkpoints} yet: starting from scratch")
        return None

    def write_text(self, name: str, text: str) -> None:
        if self.enabled:
            tmp = self.root / f".{name}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.root / name)

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl and the numeric values to TensorBoard."""
        if not self.enabled:
            return
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        step = int(record.get("step", 0))
        for key, value in record.items():
            if key not in {"epoch", "step"} and isinstance(value, (int, float)):
                self.scalar(f"epoch/{key}", value, step)
        self.flush()

    def scalar(self, tag: str, value: float, step: int) -> None:
        writer = self.tb
        if writer is not None:
            writer.add_scalar(tag, value, step)

    @property
    def tb(self):
        """The SummaryWriter for tb/ (created on first use; None on non-main ranks)."""
        if self.enabled and self._tb_enabled and self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.root / "tb"))
        return self._writer

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def truncate_metrics(self, step: int) -> None:
        """On resume, drop metrics lines written after the checkpoint's step (they will be written again)."""
        if not (self.enabled and self.metrics_file.exists()):
            return
        keep = [line for line in self.metrics_file.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= step]
        self.write_text("metrics.jsonl", "".join(line + "\n" for line in keep))
