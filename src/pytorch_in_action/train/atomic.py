"""Writes that fail cleanly: a failed write (disk full, permission lost, read-only filesystem) becomes one line
that names the file and the cause, no partial temporary file stays behind, and the previous version of the file
is left as it was (every run file is written to a temporary name and renamed over the old one)."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path

from pytorch_in_action.errors import PiaError

_WHAT_TO_DO = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space (or raise the quota)",
               errno.EROFS: "make the filesystem writable", errno.EACCES: "restore write permission",
               errno.EPERM: "restore write permission"}


class RunWriteError(PiaError):
    """A file of the run could not be written. The CLI prints the one-line message and exits non-zero."""


def write_failure(path: Path, err: OSError) -> str:
    """The one line for a failed write: the file, the cause, and what the user can do about it."""
    cause = err.strerror or str(err) or type(err).__name__
    code = errno.errorcode.get(err.errno or 0)
    todo = _WHAT_TO_DO.get(err.errno or 0, "fix the cause")
    return (f"cannot write {path}: {cause}{f' ({code})' if code else ''}; no partial file is left and the "
            f"previous version is intact. Training since the last checkpoint was only in memory and ends with this "
            f"process: {todo}, then continue with --resume from the last good checkpoint")


@contextlib.contextmanager
def guarded_write(path: Path, tmp: Path | None = None) -> Iterator[None]:
    """Turn an OSError raised inside the block (writing `path`, through `tmp`) into a `RunWriteError`; remove `tmp`."""
    try:
        yield
    except OSError as err:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        raise RunWriteError(write_failure(path, err)) from None
