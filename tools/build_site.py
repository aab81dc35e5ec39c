"""Build the book as a static site (mkdocs-material + mkdocs-jupyter) from the stored notebook outputs.

`python tools/build_site.py [--out site]`. The site sources are assembled in build/site-src:
the README as the home page, every notebook under notebooks/ (picked up automatically, grouped by section
as in the README), one page per recipe generated from the real `pia ... --help` output, and docs/*.md.
Notebooks are not executed here (`make book` executes them first), so the build is fast. The site works
offline: MathJax is served from the site itself and no font or script comes from a CDN.
This file is also the mkdocs hook module of the build (see `on_post_page`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
SRC = BUILD / "site-src"
SECTIONS = [  # folder under notebooks/ -> title, in the README's order
    ("pytorch-basics", "PyTorch basics"),
    ("pytorch-advanced", "PyTorch advanced"),
    ("models", "Models from scratch"),
    ("image-classification", "Image classification"),
    ("transformers", "Hugging Face transformers"),
]
RECIPES = {  # `pia <task>` -> its actions
    "image": ["train", "evaluate"],
    "translate": ["train", "evaluate", "translate"],
    "text-cls": ["train", "evaluate", "predict"],
    "mlm": ["pretrain"],
}
MATHJAX = "assets/mathjax/tex-mml-chtml.js"
MATHJAX_CONFIG = "assets/javascripts/mathjax-config.js"
# `$...$` as in Jupyter; code (pre, code) is never typeset, nor are the navigation, header, search and footer.
MATHJAX_CONFIG_JS = """window.MathJax = {
  tex: {inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
        processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: "tex2jax_ignore|md-nav|md-header|md-search|md-footer"}
};
"""
# The nbconvert template loads MathJax 2 from a URL of its own; the site loads MathJax 3 once for every page.
NBCONVERT_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
# The nbconvert template imports mermaid from a CDN when a notebook has diagrams; the book has none.
NBCONVERT_MERMAID = re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", '
                               r'async \(\) => \{\s*const diagrams = .*?</script>', re.S)
HELP_SCRIPT = """
import contextlib, io, json, sys
from pytorch_in_action.cli import main
out = {}
for args in json.loads(sys.argv[1]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            code = main(args)
        except SystemExit as exit_:
            code = exit_.code
    if code not in (0, None):
        sys.exit(f"`pia {' '.join(args)}` exited with {code}")
    out[" ".join(args)] = buf.getvalue().rstrip()
print(json.dumps(out))
"""


def notebook_title(path: Path) -> str:
    """The navigation title: the notebook's `# ` heading without its subtitle, in one style for the whole book.

    `# 06 · Fine-tuning: transfer learning, offline` -> `06 · Fine-tuning`; a leading label that repeats the
    file name (`# seq2seq · English → Chinese translation, end to end`) is dropped -> `English → Chinese
    translation`; "from scratch" is said once, by the section's name. Numbered notebooks keep their number, so
    the navigation reads like a table of contents.
    """
    nb = json.loads(path.read_text(encoding="utf-8"))
    heading = next((line[2:].strip() for cell in nb["cells"] if cell["cell_type"] == "markdown"
                    for line in "".join(cell["source"]).splitlines() if line.startswith("# ")), "")
    number, _, rest = heading.partition(" · ")
    if not rest:
        number, rest = "", heading
    elif not number.isdigit():  # a label such as `language_modeling`, not a chapter number
        number = ""
    title = re.split(r": |, ", rest, maxsplit=1)[0].removesuffix(" from scratch").strip()
    title = title or path.stem.replace("_", " ")
    title = title[0].upper() + title[1:]
    return f"{number} · {title}" if number else title


def book_order(folder: str) -> list[Path]:
    """The notebooks of one section in the README's order (the order of the book); any not in the README
    come last, sorted by name."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(rf"\]\(notebooks/{re.escape(folder)}/([^)/]+\.ipynb)\)", readme)
    found = {p.name: p for p in (ROOT / "notebooks" / folder).glob("*.ipynb")}
    ordered = [found.pop(name) for name in dict.fromkeys(listed) if name in found]
    return ordered + sorted(found.values())


def markdown_title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ").capitalize()


def pia_help(commands: list[list[str]]) -> dict[str, str]:
    """The real `pia ... --help` texts, 80 columns (fits the page), all from one Python process.

    The cache folder is a scratch one, shown as its documented default `~/.cache/pytorch_in_action`.
    """
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "COLUMNS": "80", "HF_HUB_OFFLINE": "1", "PIA_CACHE": cache}
        res = subprocess.run([sys.executable, "-c", HELP_SCRIPT, json.dumps(commands)], capture_output=True,
                             text=True, cwd=ROOT, env=env)
        if res.returncode != 0:
            raise SystemExit(f"collecting `pia --help` texts failed: {res.stderr.strip()[-1000:]}")
        texts = json.loads(res.stdout.strip().splitlines()[-1])
    return {k: v.replace(cache, "~/.cache/pytorch_in_action") for k, v in texts.items()}


def recipe_pages() -> list[dict]:
    import importlib.util

    from pytorch_in_action.cli import TASKS

    tasks = {t: a for t, a in RECIPES.items() if importlib.util.find_spec(TASKS[t][0]) is not None}
    helps = pia_help([[t, "--help"] for t in tasks] + [[t, a, "--help"] for t, acts in tasks.items() for a in acts])
    nav = []
    (SRC / "recipes").mkdir(parents=True, exist_ok=True)
    for task, actions in tasks.items():
        text = TASKS[task][1]
        parts = [f"# pia {task}\n\n{text[0].upper() + text[1:]}. Every option below is copied from the "
                 f"command's own `--help` when the site is built; `python -m pytorch_in_action {task} ...` is "
                 "the same command. Options can also come from `--config run.yaml` (keys are the option names; "
                 f"flags on the command line win).\n\n```text\n$ pia {task} --help\n{helps[f'{task} --help']}\n```\n"]
        for action in actions:
            parts.append(f"## pia {task} {action}\n\n```text\n$ pia {task} {action} --help\n"
                         f"{helps[f'{task} {action} --help']}\n```\n")
        (SRC / "recipes" / f"{task}.md").write_text("\n".join(parts), encoding="utf-8")
        nav.append({f"pia {task}": f"recipes/{task}.md"})
    return nav


def home_page() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = text.replace("](docs/", "](")  # docs/*.md sit at the site root
    (SRC / "index.md").write_text(text, encoding="utf-8")


def mathjax() -> None:
    """MathJax 3 served from the site itself (the site must work without internet), with its configuration."""
    dest = SRC / MATHJAX
    npm_dir = BUILD / "npm"
    src = npm_dir / "node_modules" / "mathjax" / "es5"
    if not (src / "tex-mml-chtml.js").is_file():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(npm_dir),
                        "mathjax@3"], check=True)
    shutil.copytree(src, dest.parent, dirs_exist_ok=True)
    (SRC / MATHJAX_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (SRC / MATHJAX_CONFIG).write_text(MATHJAX_CONFIG_JS, encoding="utf-8")


def on_post_page(output: str, page, config) -> str:
    """mkdocs hook: drop the nbconvert template's remote MathJax 2 and mermaid loaders from notebook pages."""
    return NBCONVERT_MERMAID.sub("", NBCONVERT_MATHJAX.sub("", output))


def assemble() -> dict:
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    home_page()
    docs = sorted((ROOT / "docs").glob("*.md"))
    for md in docs:
        shutil.copy(md, SRC / md.name)
    book = []
    for folder, title in SECTIONS:
        notebooks = book_order(folder)
        if not notebooks:
            continue
        (SRC / "notebooks" / folder).mkdir(parents=True, exist_ok=True)
        pages = []
        for nb in notebooks:
            shutil.copy(nb, SRC / "notebooks" / folder / nb.name)
            pages.append({notebook_title(nb): f"notebooks/{folder}/{nb.name}"})
        for extra in (ROOT / "notebooks" / folder).iterdir():  # images referenced by notebooks
            if extra.is_file() and extra.suffix.lower() in {".png", ".svg", ".jpg", ".gif"}:
                shutil.copy(extra, SRC / "notebooks" / folder / extra.name)
        book.append({title: pages})
    mathjax()
    nav = [{"Home": "index.md"}, *book, {"Recipes": recipe_pages()}]
    nav += [{markdown_title(md): md.name} for md in docs]
    return {
        "site_name": "pytorch-in-action",
        "site_description": "Deep-learning pieces from scratch in PyTorch, proven equal to the real ones",
        "docs_dir": str(SRC),
        "use_directory_urls": True,
        "theme": {
            "name": "material",
            "font": False,  # no Google Fonts: the site works offline with the system fonts
            "palette": [
                {"scheme": "default", "primary": "deep orange", "accent": "deep orange",
                 "toggle": {"icon": "material/weather-night", "name": "Dark mode"}},
                {"scheme": "slate", "primary": "deep orange", "accent": "deep orange",
                 "toggle": {"icon": "material/weather-sunny", "name": "Light mode"}},
            ],
            "icon": {"logo": "material/fire"},
            "features": ["content.code.copy", "navigation.sections", "navigation.top", "navigation.footer",
                         "search.highlight", "search.suggest", "toc.follow"],
        },
        "hooks": [str(Path(__file__).resolve())],
        "plugins": ["search", {"mkdocs-jupyter": {"execute": False, "include_source": True,
                                                  "custom_mathjax_url": MATHJAX}}],
        "markdown_extensions": ["tables", "admonition", "attr_list", "md_in_html", "pymdownx.superfences",
                                {"toc": {"permalink": True}},
                                {"pymdownx.arithmatex": {"generic": True}},
                                {"pymdownx.highlight": {"anchor_linenums": False}}],
        "extra_javascript": [MATHJAX_CONFIG, MATHJAX],
        "nav": nav,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "site")
    args = ap.parse_args(argv)
    config = assemble()
    config["site_dir"] = str(args.out.resolve())
    cfg_path = BUILD / "mkdocs.yml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--clean", "-f", str(cfg_path)],
                         capture_output=True, text=True)
    errors = [line for line in res.stderr.splitlines() if re.match(r"(ERROR|WARNING)", line)]
    if res.returncode != 0 or errors:
        print(res.stderr[-4000:], file=sys.stderr)
        return 1
    print(f"site written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
