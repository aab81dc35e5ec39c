"""Execute notebooks with nbclient.

`python tools/nbrun.py --inplace notebooks/`   full mode, outputs stored in the files (what `make book` runs)
`python tools/nbrun.py --small notebooks/x.ipynb`  small mode (PIA_SMALL=1), outputs discarded (what tests run)

Each notebook runs with its own folder as the working directory. Any error fails the run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from unittest import mock

import nbformat
from nbclient import NotebookClient

from i18n import english_notebooks


def find_notebooks(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += english_notebooks(p)  # the generated `.zh.ipynb` editions run only when named
        else:
            found.append(p)
    return found


def run_notebook(path: Path, *, small: bool, inplace: bool, timeout: int = 1800) -> nbformat.NotebookNode:
    """Execute `path` top to bottom; raise on the first failing cell."""
    nb = nbformat.read(path, as_version=4)
    # the kernel inherits these; both are restored afterwards (PIA_HEADLESS: no browser, so cells that would
    # open a dashboard print its command instead)
    with mock.patch.dict(os.environ, {"PIA_SMALL": "1" if small else "0", "PIA_HEADLESS": "1"}):
        client = NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
        )
        client.execute()
    if inplace:
        nbformat.write(nb, path)
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--small", action="store_true", help="PIA_SMALL=1: small sizes, as in CI")
    ap.add_argument("--inplace", action="store_true", help="store outputs in the notebook files")
    args = ap.parse_args(argv)
    failed = []
    for path in find_notebooks(args.paths):
        start = time.perf_counter()
        try:
            run_notebook(path, small=args.small, inplace=args.inplace)
            print(f"ok    {time.perf_counter() - start:6.1f}s  {path}")
        except Exception as err:  # report every notebook, then fail
            failed.append(path)
            print(f"FAIL  {time.perf_counter() - start:6.1f}s  {path}: {str(err).splitlines()[-1] if str(err) else err!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
