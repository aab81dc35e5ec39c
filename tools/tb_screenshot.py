"""Take screenshots of TensorBoard's dashboards with headless Chromium (the pictures of notebook 08).

Run it in the notebook's folder after the notebook has written its logs, so that TensorBoard shows the same
relative log folder as the notebook's prose:

    cd notebooks/pytorch-advanced
    python ../../tools/tb_screenshot.py --logdir runs/08_tensorboard \
        --shot "scalars&regexInput=overfit&tagFilter=loss=figures/08_tensorboard_scalars.png" \
        --shot "histograms&regexInput=dying=figures/08_tensorboard_histograms.png"

Each `--shot VIEW=FILE` opens `http://127.0.0.1:PORT/#VIEW` and saves what the browser shows. VIEW is the
dashboard's name, optionally followed by the dashboard's URL settings: `regexInput` filters the runs,
`tagFilter` the charts. The tool starts `tensorboard --logdir LOGDIR` on 127.0.0.1 and a free port, waits
until it has loaded the runs, takes the screenshots and stops it. Needs Chromium (`chromium` or `chromium-browser` on PATH; on Debian/Ubuntu
`apt-get install chromium`). Each file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("tb_screenshot: no Chromium found on PATH (install it, e.g. `apt-get install chromium`)")


def wait_until_loaded(url: str, server: subprocess.Popen, timeout: float = 90) -> list[str]:
    """Poll `data/runs` until TensorBoard lists some runs and the list stops growing."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"tb_screenshot: tensorboard exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url + "data/runs", timeout=2) as reply:
                runs = json.load(reply)
        except OSError:
            runs = None
        if runs and runs == seen:
            return runs
        seen = runs
        time.sleep(2)
    raise SystemExit(f"tb_screenshot: tensorboard listed no runs within {timeout:.0f}s")


def screenshot(chromium: str, url: str, out: Path, size: str, budget_ms: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        with tempfile.TemporaryDirectory() as profile:  # a throwaway browser profile
            cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={tmp}",
                   f"--window-size={size}", f"--virtual-time-budget={budget_ms}", url]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or os.path.getsize(tmp) == 0:
            raise SystemExit(f"tb_screenshot: chromium failed on {url}: {done.stderr.strip()[-300:]}")
        os.chmod(tmp, 0o644)  # mkstemp creates the file private to its owner
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def parse_shot(text: str) -> tuple[str, Path]:
    view, sep, file = text.rpartition("=")
    if not sep or not view or not file:
        raise argparse.ArgumentTypeError(f"expected VIEW=FILE, got {text!r}")
    return view, Path(file)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logdir", required=True, type=Path)
    ap.add_argument("--shot", action="append", required=True, type=parse_shot, metavar="VIEW=FILE")
    ap.add_argument("--window-size", default="1400,900")
    ap.add_argument("--virtual-time-budget", type=int, default=15000, help="ms the page may run before the shot")
    args = ap.parse_args(argv)
    if not args.logdir.is_dir():
        ap.error(f"--logdir {args.logdir} is not a folder")
    chromium = find_chromium()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(args.logdir), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    try:
        runs = wait_until_loaded(base, server)
        print(f"tensorboard on {base} lists {len(runs)} runs")
        for view, out in args.shot:
            screenshot(chromium, f"{base}#{view}", out, args.window_size, args.virtual_time_budget)
            print(f"{out}  <-  #{view}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
