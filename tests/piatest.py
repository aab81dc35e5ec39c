"""Helpers shared by the tests (importable as `piatest` thanks to pytest's pythonpath setting)."""

import json
import os
import re
import select
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]  # the repository


def pia(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m pytorch_in_action ...` (the `pia` command) and capture its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pytorch_in_action", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def readme_commands(readme: Path = ROOT / "README.md") -> list[list[str]]:
    """Shell words of every command line in the README's bash blocks (continuations joined, comments dropped)."""
    text = readme.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
    return commands


def write_tree(root: Path, classes=("a", "b"), per_class: int = 6, size: int = 16) -> Path:
    """A tiny ImageNet-layout folder of random PNGs."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def require_tool(names: str | tuple[str, ...], what: str) -> str:
    """The path of an optional tool (`what` says what it adds), found on PATH.

    Without it the calling test is skipped with a one-line reason, except under `CI=true`, where `.ci/run`
    installs the tool, so its absence is a failure instead of a silent skip."""
    import shutil

    import pytest

    for name in (names,) if isinstance(names, str) else names:
        if path := shutil.which(name):
            return path
    first = names if isinstance(names, str) else names[0]
    reason = f"{first} not found: {what} (`apt-get install {first}`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI requires it")
    pytest.skip(reason)


def require_cjk_font() -> None:
    """Skip (fail under `CI=true`) unless fontconfig knows a font with Chinese glyphs."""
    import pytest

    fc_list = require_tool("fc-list", "lists the fonts a browser can draw Chinese with")
    found = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True).stdout.strip()
    if not found:
        reason = "no font with Chinese glyphs: Chinese pages would show boxes (`apt-get install fonts-noto-cjk`)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI requires it")
        pytest.skip(reason)


def chromium_evaluate(chromium: str, url: str, expression: str, timeout: float = 90) -> object:
    """Load `url` in headless Chromium, then return the value of the JavaScript `expression` (a promise is
    awaited). Speaks the DevTools protocol over a pipe (`--remote-debugging-pipe`: commands on the child's fd 3,
    replies on fd 4, NUL-separated JSON), so it needs no network port and no client library."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()

    def child_fds() -> None:
        read_end, write_end = os.dup(to_child_r), os.dup(from_child_w)  # above 4: neither dup2 clobbers the other
        os.dup2(read_end, 3)
        os.dup2(write_end, 4)

    deadline = time.monotonic() + timeout
    pending = b""
    ids = iter(range(1, 1_000_000))

    def receive() -> dict:
        nonlocal pending
        while b"\0" not in pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([from_child_r], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not finish with {url} in {timeout:g} s")
            chunk = os.read(from_child_r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium exited")
            pending += chunk
        raw, pending = pending.split(b"\0", 1)
        return json.loads(raw)

    def call(method: str, params: dict, session: str | None = None, until_event: str | None = None) -> dict:
        msg_id = next(ids)
        msg = {"id": msg_id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(to_child_w, json.dumps(msg).encode() + b"\0")
        result, seen = None, until_event is None
        while result is None or not seen:
            reply = receive()
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                result = reply["result"]
            elif reply.get("method") == until_event:
                seen = True
        return result

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                 "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
                                preexec_fn=child_fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        try:
            target = call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            call("Page.enable", {}, session)
            call("Page.navigate", {"url": url}, session, until_event="Page.loadEventFired")
            res = call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                       session)
            if "exceptionDetails" in res:
                details = res["exceptionDetails"]
                raise RuntimeError(f"{url}: {details.get('exception', {}).get('description', details)}")
            return res["result"].get("value")
        finally:
            proc.kill()
            proc.wait()
            os.close(to_child_w)
            os.close(from_child_r)
