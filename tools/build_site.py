"""Build the book as a static site (mkdocs-material + mkdocs-jupyter) from the stored notebook outputs.

`python tools/build_site.py [--out site]`. The site sources are assembled in build/site-src:
the README as the home page, every notebook under notebooks/ (picked up automatically, grouped by section),
one page per recipe generated from the real `pia ... --help` output, and docs/*.md. Notebooks are not
executed here (`make book` executes them first), so the build is fast.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
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


def notebook_title(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem.replace("_", " ")


def pia_help(*args: str) -> str:
    res = subprocess.run([sys.executable, "-m", "pytorch_in_action", *args, "--help"], capture_output=True,
                         text=True, cwd=ROOT, env={"COLUMNS": "100", "PATH": "/usr/bin:/bin",
                                                    "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src")})
    if res.returncode != 0:
        raise SystemExit(f"`pia {' '.join(args)} --help` failed: {res.stderr.strip()[-500:]}")
    return res.stdout.rstrip()


def recipe_pages() -> list[dict]:
    from pytorch_in_action.cli import TASKS

    nav = []
    (SRC / "recipes").mkdir(parents=True, exist_ok=True)
    for task, actions in RECIPES.items():
        module, text = TASKS[task]
        try:
            __import__(module)
        except ImportError:
            continue
        parts = [f"# pia {task}\n\n{text[0].upper() + text[1:]}.\n\nGenerated from the command's own `--help`.\n"]
        for action in actions:
            parts.append(f"## pia {task} {action}\n\n```text\n{pia_help(task, action)}\n```\n")
        (SRC / "recipes" / f"{task}.md").write_text("\n".join(parts), encoding="utf-8")
        nav.append({f"pia {task}": f"recipes/{task}.md"})
    return nav


def home_page() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = text.replace("](docs/", "](")  # docs/*.md sit at the site root
    (SRC / "index.md").write_text(text, encoding="utf-8")


def mathjax() -> None:
    """MathJax served from the site itself (the site must work without internet)."""
    dest = SRC / MATHJAX
    npm_dir = BUILD / "npm"
    src = npm_dir / "node_modules" / "mathjax" / "es5"
    if not src.is_dir():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(npm_dir),
                        "mathjax@3"], check=True)
    shutil.copytree(src, dest.parent, dirs_exist_ok=True)


def assemble() -> dict:
    if SRC.exists():
        shutil.rmtree(SRC)
    SRC.mkdir(parents=True)
    home_page()
    for md in sorted((ROOT / "docs").glob("*.md")):
        shutil.copy(md, SRC / md.name)
    book = []
    for folder, title in SECTIONS:
        notebooks = sorted((ROOT / "notebooks" / folder).glob("*.ipynb"))
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
    nav += [{md.stem.replace("_", " ").capitalize(): md.name} for md in sorted((ROOT / "docs").glob("*.md"))]
    return {
        "site_name": "pytorch-in-action",
        "site_description": "Deep-learning pieces from scratch in PyTorch, proven equal to the real ones",
        "docs_dir": str(SRC),
        "use_directory_urls": True,
        "theme": {"name": "material", "features": ["content.code.copy", "navigation.sections",
                                                    "navigation.top", "search.highlight"]},
        "plugins": ["search", {"mkdocs-jupyter": {"execute": False, "include_source": True,
                                                  "custom_mathjax_url": f"/{MATHJAX}?config=TeX-AMS_CHTML"}}],
        "markdown_extensions": ["tables", "admonition", "pymdownx.superfences",
                                {"pymdownx.arithmatex": {"generic": True}},
                                {"pymdownx.highlight": {"anchor_linenums": False}}],
        "extra_javascript": [f"/{MATHJAX}"],
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
