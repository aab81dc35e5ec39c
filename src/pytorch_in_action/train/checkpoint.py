"""Training checkpoints: written atomically, loaded with `weights_only=True`, RNG states included.

A checkpoint is a plain dict of tensors and Python containers. It is first written to a temporary file in the
same folder and then renamed over the target, so a crash (even `kill -9`) during saving leaves the previous
checkpoint intact. Loading never unpickles arbitrary objects (`weights_only=True`).
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytorch_in_action.errors import PiaError, torch_load_failure
from pytorch_in_action.train.atomic import guarded_write


def capture_rng_state() -> dict[str, Any]:
    """Every random number generator a training step can touch: Python, NumPy, torch CPU and CUDA."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state` (CUDA states are restored when CUDA is present)."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write `state` to `path` atomically (temporary file in the same folder, fsync, rename).

    A failed write (disk full, permission, read-only filesystem) raises `RunWriteError`, one line naming the file
    and the cause; the temporary file is removed and the previous `path` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with guarded_write(path, tmp):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except RuntimeError as err:  # torch's zip writer reports the OSError of a failed write as a RuntimeError
            raise _as_os_error(err, path) from None
        finally:
            if tmp.exists():
                tmp.unlink()
    return path


def _as_os_error(err: RuntimeError, path: Path) -> OSError:
    """The OSError behind a RuntimeError of torch.save's zip writer ("unexpected pos ..."): the failed write's own
    error when Python kept it as the context; else a full filesystem is told by its free space."""
    if isinstance(err.__context__, OSError):
        return err.__context__
    if "unexpected pos" not in str(err) and "file write failed" not in str(err):
        raise err
    try:
        st = os.statvfs(path.parent)
        full = st.f_bavail * st.f_frsize < 1 << 20
    except OSError:
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)} (torch.save: {str(err).splitlines()[0]})", str(path))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (`weights_only=True`); a missing or unreadable file is a `PiaError`."""
    path = Path(path)
    if not path.is_file():
        raise PiaError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # not a torch file, truncated, or refused by the weights-only unpickler
        raise PiaError(f"cannot read checkpoint {path}: {torch_load_failure(err)}") from None
    if not isinstance(state, dict):
        raise PiaError(f"{path} is not a training checkpoint (expected a dict)")
    return state


def export_safetensors(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Export the model's weights (no code, no pickle) as safetensors, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with guarded_write(path, tmp):
        save_file(tensors, str(tmp))
        os.replace(tmp, path)
    return path
