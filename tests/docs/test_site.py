"""The book as a website: internal links resolve, the site builds from stored outputs with the README's
sections and a page per recipe, and pages render in headless Chromium with figures, typeset math, no console
errors and no request leaving the machine. The Chinese edition is built beside it (zh/): Chinese navigation,
each notebook's translated page, a language switch to the same page, and search that finds Chinese words."""

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
from piatest import chromium_evaluate, require_cjk_font, require_tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402
import check_links  # noqa: E402

import i18n  # noqa: E402

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
    missing = [str(p.relative_to(ROOT)) for p in i18n.english_notebooks() if str(p.relative_to(ROOT)) not in readme]
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
    for nb in i18n.english_notebooks():
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


def _render(jobs: dict[str, tuple[str, list[str]]], server: str, tmp_path: Path) -> dict[str, tuple]:
    """Run Chromium on every job (name -> (site path, action)) side by side, each launch being slow on a busy
    machine; check that no page logged a console error or asked for anything outside the site."""
    ARTIFACTS.mkdir(exist_ok=True)
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(_chromium_run, server + path, tmp_path / name, what)
                   for name, (path, what) in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    for name, (_, log, requests) in results.items():
        assert _console_errors(log) == [], name
        assert requests, f"{name}: Chromium's net log recorded no request"
        assert _page_requests_leaving(requests, server) == [], name
    return results


def _notebook_with_math_and_figures() -> str:
    """The smallest notebook whose prose has math and whose outputs have figures (its site path)."""
    for nb in sorted(i18n.english_notebooks(), key=lambda p: p.stat().st_size):
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
    results = _render(jobs, server, tmp_path)
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


# --- the Chinese edition: a second build in zh/, linked to the English one page by page ------------------------

def _zh_title(notebook: Path) -> str:
    """The Chinese `# ` heading of a notebook, from its translation."""
    entries = i18n.read_translations(i18n.translation_file(notebook))
    return next(line[2:].strip() for e in entries.values() for line in e.text.splitlines() if line.startswith("# "))


def test_chinese_site_has_every_notebook_chinese_navigation_and_the_glossary(site):
    config = build_site.yaml.safe_load((build_site.BUILD / "mkdocs.zh.yml").read_text(encoding="utf-8"))
    assert config["theme"]["language"] == "zh"
    sections = [next(iter(entry)) for entry in config["nav"]]
    assert sections[0] == "首页" and "术语表" in sections
    for folder, _ in build_site.SECTIONS:
        if any((ROOT / "notebooks" / folder).glob("*.ipynb")):
            assert build_site.SECTIONS_ZH[folder] in sections, folder
    for nb in i18n.english_notebooks():
        rel = nb.relative_to(ROOT).with_suffix("")
        page = (site / "zh" / rel / "index.html").read_text(encoding="utf-8")
        heading = re.sub(r"<[^>]+>", "", re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)[1]).strip("¶ \n")
        assert heading == _zh_title(nb), rel  # the page shows the translation, not the English text
    home = (site / "zh" / "index.html").read_text(encoding="utf-8")
    assert 'href="notebooks/pytorch-basics/01_Tensor/"' in home  # README.zh.md's links lead to Chinese pages
    assert "张量" in (site / "zh" / "glossary" / "index.html").read_text(encoding="utf-8")


def test_language_switch_leads_to_the_same_page_in_the_other_language(site):
    from urllib.parse import urljoin

    for rel in ["", "notebooks/models/gru/", "recipes/translate/"]:
        en_url, zh_url = f"http://h/{rel}", f"http://h/zh/{rel}"
        en_page = (site / rel / "index.html").read_text(encoding="utf-8")
        zh_page = (site / "zh" / rel / "index.html").read_text(encoding="utf-8")
        assert urljoin(en_url, re.search(r'<a href="([^"]*)" hreflang="zh"', en_page)[1]) == zh_url
        assert urljoin(zh_url, re.search(r'<a href="([^"]*)" hreflang="en"', zh_page)[1]) == en_url


def test_chinese_search_index_is_segmented_into_words(site):
    index = json.loads((site / "zh" / "search" / "search_index.json").read_text(encoding="utf-8"))
    text = " ".join(doc["title"] + " " + doc["text"] for doc in index["docs"]
                    if doc["location"].startswith("notebooks/pytorch-basics/02_AutoDiff/"))
    words = set(re.split(index["config"]["separator"], text))
    assert "求导" in words or "自动求导" in words  # a word of its own, not a run of characters


SEARCH_JS = """new Promise(resolve => {
  const input = document.querySelector("input.md-search__input");
  input.focus();
  input.value = %s;
  input.dispatchEvent(new Event("input", {bubbles: true}));
  input.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true}));
  const start = Date.now();
  const poll = () => {
    const hits = [...document.querySelectorAll(".md-search-result__item > a")].map(a => a.href);
    if (hits.length || Date.now() - start > 60000) resolve(hits); else setTimeout(poll, 200);
  };
  poll();
})"""
SWITCH_JS = """(async () => {
  const link = document.querySelector('a[hreflang="en"]');
  return {href: link.href, status: (await fetch(link.href)).status};
})()"""


def _same_glyphs(chromium: str, site: Path, server: str, text: str, tmp_path: Path) -> bool:
    """Whether `text` and its characters in reverse order render as the same picture in the theme's font stack
    (material's system fonts, as the site uses no web font): true when every character falls back to the same
    missing-glyph box."""
    shots = []
    for i, probe in enumerate([text, text[::-1]]):
        (site / f"glyph-probe-{i}.html").write_text(
            '<html><head><meta charset="utf-8"></head><body style="margin:0;font-size:48px;font-family:'
            f'-apple-system,BlinkMacSystemFont,Helvetica,Arial,sans-serif">{probe}</body></html>', encoding="utf-8")
        shot = tmp_path / f"probe-{i}.png"
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / f'profile-{i}'}",
                        f"--screenshot={shot}", f"{server}/glyph-probe-{i}.html"],
                       capture_output=True, timeout=300)
        shots.append(shot.read_bytes())
    return shots[0] == shots[1]


def test_chinese_pages_render_with_figures_math_chinese_glyphs_search_and_switch(chromium, site, server, tmp_path):
    require_cjk_font()
    notebook = "/zh" + _notebook_with_math_and_figures()
    jobs = {"notebook": (notebook, ["--dump-dom"]),
            "notebook-shot": (notebook, [f"--screenshot={ARTIFACTS / 'site-notebook-zh.png'}"])}
    results = _render(jobs, server, tmp_path)
    page = results["notebook"][0]
    assert re.search(r'<img[^>]+src="data:image/png;base64,', page), f"{notebook}: figures missing"
    assert "<mjx-container" in page, f"{notebook}: math not typeset"
    assert re.search(r"[\u4e00-\u9fff]{4}", _text_of_math_paragraphs(page)), "no Chinese prose on the page"
    assert (ARTIFACTS / "site-notebook-zh.png").stat().st_size > 10_000
    title = re.sub(r"[^\u4e00-\u9fff]", "", _zh_title(ROOT / (notebook[4:].strip("/") + ".ipynb")))
    assert len(set(title)) >= 2 and not _same_glyphs(chromium, site, server, title[:4], tmp_path), \
        "Chinese characters render as missing-glyph boxes"

    hits = chromium_evaluate(chromium, server + "/zh/", SEARCH_JS % json.dumps("自动求导"))
    assert any("/zh/notebooks/pytorch-basics/02_AutoDiff/" in h for h in hits), hits
    switch = chromium_evaluate(chromium, server + notebook, SWITCH_JS)
    assert switch == {"href": server + notebook[3:], "status": 200}
