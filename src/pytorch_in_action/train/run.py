"""The run folder every recipe writes: config.yaml, metrics.jsonl, tb/ (TensorBoard), checkpoints/.

Only the main rank writes; on other ranks every method is a no-op, so callers need no rank checks.

A folder holds one run at a time, and a run is never replaced by accident:
- the main rank holds an OS lock on `<run>/.lock` (`fcntl.lockf`) from the moment it opens the folder until
  the process ends; the kernel drops it when the process dies, `kill -9` included, so it never goes stale. A
  second run into the folder is refused with the holder's pid@host, which the lock file records.
- a folder that already holds a run (config.yaml, metrics.jsonl or checkpoints) is refused unless the run
  continues it (`resume`) or replaces it (`overwrite`: its files are deleted first).
- a failed write (disk full, permission lost, read-only filesystem) is one `RunWriteError` line naming the
  file and the cause (`train.atomic`); no partial file is left and the previous file stays as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from pytorch_in_action.errors import PiaError
from pytorch_in_action.train.atomic import guarded_write

try:  # POSIX record locks: not inherited by forked DataLoader workers, released when the process dies
    import fcntl
except ImportError:  # Windows: no lock (a concurrent run into one folder is not detected there)
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


def _holds_run(root: Path) -> bool:
    """Whether `root` holds (part of) a run: its config, its metrics or a checkpoint."""
    return any((root / name).exists() for name in ("config.yaml", "metrics.jsonl")) or any(
        (root / "checkpoints").glob("*.pt"))


class RunDir:
    def __init__(self, root: str | os.PathLike, enabled: bool = True, tensorboard: bool = True, *,
                 resume: str | None = None, overwrite: bool = False, lock: bool = True):
        """Open (creating it) the run folder `root` on the main rank (`enabled`).

        `resume` is the `--resume` value (None, "latest" or a checkpoint path): with it, a folder that holds a run
        is continued. `overwrite` replaces such a run (its files are deleted first). Without either, a folder that
        holds a run is refused. `lock=False` skips the folder lock (for library use, not for recipes).
        """
        self.root = Path(root)
        self.enabled = enabled
        self._tb_enabled = tensorboard
        self._writer = None
        self._lock_fd: int | None = None
        if resume is not None and overwrite:
            raise PiaError("--resume continues the run in --out and --overwrite replaces it: give one of them")
        if resume not in (None, "latest") and not Path(resume).is_file():  # before anything of the run is written
            raise PiaError(f"checkpoint not found: {resume}")
        if not enabled:
            return
        if self.root.exists() and not self.root.is_dir():
            raise PiaError(f"the run folder {self.root} is a file")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise PiaError(f"cannot create the run folder {self.root}: {err.strerror or err}") from None
        if lock:
            self._lock()
        try:
            if _holds_run(self.root) and resume is None:
                if not overwrite:
                    raise PiaError(f"{self.root} already holds a run (config.yaml, metrics.jsonl or checkpoints); "
                                   f"continue it with --resume, replace it with --overwrite, or choose another --out")
                self._clear()
            with guarded_write(self.checkpoints):
                self.checkpoints.mkdir(exist_ok=True)
            for stale in self.checkpoints.glob(".*.tmp-*"):  # left by a process killed while saving
                stale.unlink(missing_ok=True)
            self._name_holder()
        except BaseException:
            self.release()
            raise

    # -- one run per folder -------------------------------------------------------------------------------
    def _lock(self) -> None:
        if fcntl is None:
            return
        path = self.root / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as err:
            raise PiaError(f"cannot create the lock file {path}: {err.strerror or err}") from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise PiaError(f"{self.root} is in use by a live run ({holder}); wait for it to end or choose another "
                           f"--out") from None
        self._lock_fd = fd

    def _name_holder(self) -> None:
        """Record pid@host in the lock file, once this run is sure to use the folder (a refused run leaves the
        folder as it found it)."""
        if self._lock_fd is not None:
            os.ftruncate(self._lock_fd, 0)
            os.pwrite(self._lock_fd, f"pid {os.getpid()}@{socket.gethostname()}\n".encode(), 0)

    def release(self) -> None:
        """Drop the folder lock (also dropped by the kernel when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _clear(self) -> None:
        """Delete the previous run's files (everything in the folder but the lock), for `overwrite`.

        Entries are first renamed into one hidden folder, so an interrupted deletion never leaves a half-old run
        that looks whole; symlinks are removed, never followed."""
        trash = self.root / f".overwritten-{os.getpid()}"
        try:
            trash.mkdir(exist_ok=True)
            for entry in list(self.root.iterdir()):
                if entry.name != LOCK_NAME and entry != trash:
                    entry.rename(trash / entry.name)
            shutil.rmtree(trash)
        except OSError as err:
            raise PiaError(f"--overwrite: cannot delete the previous run in {self.root}: "
                           f"{err.strerror or err} ({err.filename})") from None
        print(f"--overwrite: deleted the previous run in {self.root}")

    # -- paths ----------------------------------------------------------------------------------------------
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
        if self.enabled:
            # killed before its first checkpoint: the metrics of that attempt would be written again
            self.truncate_metrics(0)
            if announce:
                print(f"no checkpoint in {self.checkpoints} yet: starting from scratch")
        return None

    # -- writing --------------------------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> None:
        """Write `name` in the run folder atomically (a temporary file renamed over it)."""
        if self.enabled:
            tmp, path = self.root / f".{name}.tmp", self.root / name
            with guarded_write(path, tmp):
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl and the numeric values to TensorBoard."""
        if not self.enabled:
            return
        line = json.dumps(record) + "\n"
        with guarded_write(self.metrics_file), open(self.metrics_file, "a", encoding="utf-8") as f:
            size = f.tell()
            try:
                f.write(line)
                f.flush()
            except OSError:
                f.truncate(size)  # no half line: the file keeps its complete records
                raise
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
