"""The book as a website: internal links resolve, the site builds from stored outputs with the README's
sections and a page per recipe, and pages render in headless Chromium with figures, typeset math, no console
errors and no request leaving the machine."""

import http.server
import json
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from piatest import require_tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402
import check_links  # noqa: E402

ARTIFACTS = ROOT / "artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000", "--window-size=1280,1600"]


def test_no_broken_internal_links_or_missing_images():
    assert check_links.broken_links() == []


def test_link_checker_catches_broken_links_and_images(tmp_path, monkeypatch):
    (tmp_path / "docs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "docs" / "ok.md").write_text("[home](../README.md#top) ![fig](fig.png)\n```\n[x](nowhere.md)\n```\n")
    (tmp_path / "README.md").write_text("[a](docs/ok.md) [b](docs/missing.md) [web](https://example.org) [c](#x)")
    cell = {"cell_type": "markdown", "metadata": {}, "source": ['<img src="gone.svg">']}
    (tmp_path / "notebooks" / "n.ipynb").write_text(json.dumps({"cells": [cell]}))
    monkeypatch.setattr(check_links, "ROOT", tmp_path)
    assert sorted(check_links.broken_links()) == ["README.md: broken link docs/missing.md",
                                                 "docs/ok.md: broken link fig.png",
                                                 "notebooks/n.ipynb: broken link gone.svg"]


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


def test_site_has_the_readme_sections_every_notebook_and_recipe_pages(site):
    assert (site / "index.html").is_file() and (site / "search" / "search_index.json").is_file()
    headings = re.findall(r"^### (.+)$", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)
    config = build_site.yaml.safe_load((build_site.BUILD / "mkdocs.yml").read_text(encoding="utf-8"))
    sections = [next(iter(entry)) for entry in config["nav"]]
    for folder, title in build_site.SECTIONS:
        if any((ROOT / "notebooks" / folder).glob("*.ipynb")):
            assert title in sections and title in headings, title
    for nb in (ROOT / "notebooks").rglob("*.ipynb"):
        rel = nb.relative_to(ROOT).with_suffix("")
        assert (site / rel / "index.html").is_file(), rel
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="notebooks/pytorch-basics/01_Tensor/"' in home  # README links lead to the notebook pages
    for task, actions in build_site.RECIPES.items():
        page = (site / "recipes" / task / "index.html").read_text(encoding="utf-8")
        for action in actions:  # the real argparse output, not a hand-written copy
            assert f"usage: pia {task} {action} [-h]" in page and "--config YAML" in page, (task, action)
    assert "--skip-bad-images" in (site / "recipes" / "image" / "index.html").read_text(encoding="utf-8")


def test_site_loads_nothing_from_the_internet(site):
    remote = re.compile(r"<(?:script|img|iframe)[^>]+src=\"(?:https?:)?//|<link[^>]+href=\"(?:https?:)?//|"
                        r"import\(\"https?://")
    offenders = [str(p.relative_to(site)) for p in site.rglob("*.html") if remote.search(p.read_text("utf-8"))]
    assert offenders == []
    assert (site / build_site.MATHJAX).is_file()


def _chromium() -> str:
    return require_tool(("chromium", "chromium-browser", "google-chrome"), "renders the site's pages headless")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Requested first, so a missing Chromium skips (fails under CI=true) before the site is built."""
    return _chromium()


@pytest.fixture(scope="module")
def server(site):
    handler = partial(QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _chromium_run(url: str, workdir: Path, what: list[str]) -> tuple[str, str, list[dict]]:
    """Run headless Chromium on `url` in a new empty profile: (stdout, log with console messages, requests)."""
    workdir.mkdir(parents=True)
    netlog = workdir / "netlog.json"
    res = subprocess.run([_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}",
                          f"--log-net-log={netlog}", *what, url], capture_output=True, text=True, timeout=300)
    return res.stdout, res.stderr, _requests(netlog)


def _requests(netlog: Path) -> list[dict]:
    """Every URL request in Chromium's net log, with the origin that asked for it."""
    text = netlog.read_text(encoding="utf-8").rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short by the browser exiting
        log = json.loads(text.rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [ev["params"] for ev in log["events"] if ev["type"] == start and "url" in ev.get("params", {})]


def _page_requests_leaving(requests: list[dict], origin: str) -> list[str]:
    """URLs the page asked for (initiator = the site) that are not served by the site itself.

    Requests Chromium makes for itself (update checks, sign-in) have no origin and are not the site's doing."""
    return [r["url"] for r in requests
            if (r.get("initiator") == origin or origin in str(r.get("network_isolation_key", "")))
            and not r["url"].startswith((origin + "/", "data:", "blob:"))]


def _console_errors(log: str) -> list[str]:
    lines = [ln for ln in log.splitlines() if ":CONSOLE" in ln or "Failed to load resource" in ln]
    return [ln for ln in lines if re.search(r"error|Uncaught|Failed to load|exception", ln, re.I)]


def _notebook_with_math_and_figures() -> str:
    """The smallest notebook whose prose has math and whose outputs have figures (its site path)."""
    for nb in sorted((ROOT / "notebooks").rglob("*.ipynb"), key=lambda p: p.stat().st_size):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        prose = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        figures = any("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
        if figures and re.search(r"\$[^$\n]+\$", prose):
            return "/" + nb.relative_to(ROOT).with_suffix("").as_posix() + "/"
    pytest.fail("no notebook has both math and a figure")


def test_pages_render_in_chromium_offline_with_figures_and_math(chromium, site, server, tmp_path):
    notebook = _notebook_with_math_and_figures()
    jobs = {  # name -> (path, Chromium action); run side by side (each launch is slow on a busy machine)
        "home": ("/", ["--dump-dom"]),
        "home-shot": ("/", [f"--screenshot={ARTIFACTS / 'site-home.png'}"]),
        "notebook": (notebook, ["--dump-dom"]),
        "notebook-shot": (notebook, [f"--screenshot={ARTIFACTS / 'site-notebook.png'}"]),
        "markdown": ("/parity/", ["--dump-dom"]),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(_chromium_run, server + path, tmp_path / name, what)
                   for name, (path, what) in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    for name, (_, log, requests) in results.items():
        assert _console_errors(log) == [], name
        assert requests, f"{name}: Chromium's net log recorded no request"
        assert _page_requests_leaving(requests, server) == [], name

    home = results["home"][0]
    assert "pytorch-in-action" in home and "Quick start" in home and "PyTorch basics" in home
    assert "data-clipboard-target" in home, "code copy buttons missing"
    page = results["notebook"][0]
    assert re.search(r'<img[^>]+src="data:image/png;base64,', page), f"{notebook}: figures missing"
    assert "<mjx-container" in page, f"{notebook}: math not typeset"
    assert re.findall(r"\$[^$\n]+\$", _text_of_math_paragraphs(page)) == [], f"{notebook}: TeX left untypeset"
    assert "clipboard" in page, "code copy buttons missing"
    assert "<mjx-container" in results["markdown"][0], "math in a markdown page not typeset"
    for shot in ("site-home.png", "site-notebook.png"):
        assert (ARTIFACTS / shot).stat().st_size > 10_000, shot


def _text_of_math_paragraphs(dom: str) -> str:
    """Text of the notebook's markdown cells, where untypeset TeX would still show its `$` delimiters."""
    cells = re.findall(r'<div class="[^"]*jp-RenderedMarkdown[^"]*"[^>]*>(.*?)</div>', dom, re.S)
    text = re.sub(r"<mjx-container.*?</mjx-container>|<code.*?</code>|<pre.*?</pre>", "", "".join(cells), flags=re.S)
    return re.sub(r"<[^>]+>", "", text)
