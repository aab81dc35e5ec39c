"""The book as a website: internal links resolve, the site builds from stored outputs, and pages render
in headless Chromium with their figures and without console errors."""

import http.server
import re
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402
import check_links  # noqa: E402

ARTIFACTS = ROOT / "artifacts"


def test_no_broken_internal_links_or_missing_images():
    assert check_links.broken_links() == []


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "notebooks").rglob("*.ipynb"))
               if str(p.relative_to(ROOT)) not in readme]
    assert missing == []


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    assert build_site.main(["--out", str(out)]) == 0
    return out


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.fail("headless Chromium is required (`apt-get install chromium`; .ci/run installs it)")


@pytest.fixture(scope="module")
def server(site):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _render(url: str, screenshot: Path | None = None) -> tuple[str, str]:
    """(DOM after scripts ran, Chromium's log with console messages)."""
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--window-size=1280,2000"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return dom.stdout, dom.stderr


def _console_errors(log: str) -> list[str]:
    lines = [ln for ln in log.splitlines() if "CONSOLE" in ln or "Failed to load resource" in ln]
    return [ln for ln in lines if re.search(r"error|Uncaught|Failed to load", ln, re.I)]


def test_site_has_every_section_and_recipe_page(site):
    assert (site / "index.html").is_file() and (site / "search" / "search_index.json").is_file()
    for nb in (ROOT / "notebooks").rglob("*.ipynb"):
        rel = nb.relative_to(ROOT).with_suffix("")
        assert (site / rel / "index.html").is_file(), rel
    image_page = (site / "recipes" / "image" / "index.html").read_text(encoding="utf-8")
    assert "--skip-bad-images" in image_page and "pia image evaluate" in image_page


def test_home_and_a_notebook_render_in_chromium(site, server):
    dom, log = _render(server + "/", ARTIFACTS / "site-home.png")
    assert "pytorch-in-action" in dom and "Quick start" in dom
    assert _console_errors(log) == []
    notebook = "/notebooks/pytorch-advanced/08_Tensorboard/"
    dom, log = _render(server + notebook, ARTIFACTS / "site-notebook.png")
    assert re.search(r'<img[^>]+src="data:image/png;base64,', dom), "the notebook's figures are missing"
    assert "md-clipboard" in dom or "clipboard" in dom, "code copy buttons missing"
    assert _console_errors(log) == []
    assert (ARTIFACTS / "site-home.png").stat().st_size > 10_000
