"""Build the book as a static site (mkdocs-material + mkdocs-jupyter) from the stored notebook outputs.

`python tools/build_site.py [--out site] [--lang en zh]`. The site sources are assembled in build/site-src:
the README as the home page, every notebook under notebooks/ (picked up automatically, grouped by section
as in the README), one page per recipe generated from the real `pia ... --help` output, and docs/*.md.
The Chinese edition is a second build into OUT/zh (sources in build/site-src-zh): README.zh.md as its home
page, each notebook generated from the English one and its translation (tools/i18n.py), the glossary, Chinese
navigation, and search that segments Chinese words. Two builds linked by the theme's language switch
(`extra.alternate`), rather than one multilingual build, keep mkdocs-jupyter rendering both editions' notebooks.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/, also when mkdocs loads this file as its hook
import i18n  # noqa: E402
from i18n import english_notebooks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
SRC = BUILD / "site-src"      # the English site's sources; the Chinese site's are in SRC_ZH
SRC_ZH = BUILD / "site-src-zh"
SECTIONS = [  # folder under notebooks/ -> title, in the README's order
    ("pytorch-basics", "PyTorch basics"),
    ("pytorch-advanced", "PyTorch advanced"),
    ("models", "Models from scratch"),
    ("image-classification", "Image classification"),
    ("transformers", "Hugging Face transformers"),
]
SECTIONS_ZH = {"pytorch-basics": "PyTorch 基础", "pytorch-advanced": "PyTorch 进阶", "models": "从零实现模型",
               "image-classification": "图像分类", "transformers": "Hugging Face transformers"}
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


def notebook_title(path: Path, nb: dict | None = None) -> str:
    """The navigation title: the notebook's `# ` heading without its subtitle, in one style for the whole book.

    `# 06 · Fine-tuning: transfer learning, offline` -> `06 · Fine-tuning`; a leading label that repeats the
    file name (`# seq2seq · English → Chinese translation, end to end`) is dropped -> `English → Chinese
    translation`; "from scratch" is said once, by the section's name. Numbered notebooks keep their number, so
    the navigation reads like a table of contents. A Chinese heading is cut at its first `：` or `，` and
    drops `从零实现` the same way. `nb` is the notebook's content when it is not the file at `path`.
    """
    nb = nb or json.loads(path.read_text(encoding="utf-8"))
    heading = next((line[2:].strip() for cell in nb["cells"] if cell["cell_type"] == "markdown"
                    for line in "".join(cell["source"]).splitlines() if line.startswith("# ")), "")
    number, _, rest = heading.partition(" · ")
    if not rest:
        number, rest = "", heading
    elif not number.isdigit():  # a label such as `language_modeling`, not a chapter number
        number = ""
    title = re.split(r": |, |：|，", rest, maxsplit=1)[0].removesuffix(" from scratch").strip()
    title = re.sub(r"^从零实现\s*|（从零实现）$", "", title).strip()
    title = title or path.stem.replace("_", " ")
    title = title[0].upper() + title[1:]
    return f"{number} · {title}" if number else title


def book_order(folder: str) -> list[Path]:
    """The notebooks of one section in the README's order (the order of the book); any not in the README
    come last, sorted by name."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    listed = re.findall(rf"\]\(notebooks/{re.escape(folder)}/([^)/]+\.ipynb)\)", readme)
    found = {p.name: p for p in english_notebooks(ROOT / "notebooks" / folder)}
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


def recipe_pages(src: Path, helps: dict[str, str], tasks: dict[str, list[str]], zh: bool = False) -> list[dict]:
    from pytorch_in_action.cli import TASKS

    nav = []
    (src / "recipes").mkdir(parents=True, exist_ok=True)
    for task, actions in tasks.items():
        text = TASKS[task][1]
        if zh:
            intro = (f"# pia {task}\n\n下面每个选项都是构建网站时从命令自己的 `--help` 复制来的（原文是英文）。"
                     f"`python -m pytorch_in_action {task} ...` 是同一个命令。选项也可以写在 `--config run.yaml` 里"
                     "（键就是选项名；命令行上的选项优先）。\n\n")
        else:
            intro = (f"# pia {task}\n\n{text[0].upper() + text[1:]}. Every option below is copied from the "
                     f"command's own `--help` when the site is built; `python -m pytorch_in_action {task} ...` is "
                     "the same command. Options can also come from `--config run.yaml` (keys are the option names; "
                     "flags on the command line win).\n\n")
        parts = [f"{intro}```text\n$ pia {task} --help\n{helps[f'{task} --help']}\n```\n"]
        for action in actions:
            parts.append(f"## pia {task} {action}\n\n```text\n$ pia {task} {action} --help\n"
                         f"{helps[f'{task} {action} --help']}\n```\n")
        (src / "recipes" / f"{task}.md").write_text("\n".join(parts), encoding="utf-8")
        nav.append({f"pia {task}": f"recipes/{task}.md"})
    return nav


def recipe_help() -> tuple[dict[str, list[str]], dict[str, str]]:
    """The recipes installed (task -> actions) and their `--help` texts."""
    import importlib.util

    from pytorch_in_action.cli import TASKS

    tasks = {t: a for t, a in RECIPES.items() if importlib.util.find_spec(TASKS[t][0]) is not None}
    helps = pia_help([[t, "--help"] for t in tasks] + [[t, a, "--help"] for t, acts in tasks.items() for a in acts])
    return tasks, helps


def home_page(src: Path, zh: bool = False) -> None:
    """The README as the home page (README.zh.md for the Chinese site), its links made site links."""
    text = (ROOT / ("README.zh.md" if zh else "README.md")).read_text(encoding="utf-8")
    text = text.replace("](docs/", "](")  # docs/*.md sit at the site root
    if zh:  # the Chinese site is the English one's zh/ folder
        text = text.replace(".zh.ipynb)", ".ipynb)").replace("](i18n/zh/glossary.md", "](glossary.md")
        text = text.replace("](README.md)", "](../)")
    else:
        text = text.replace("](README.zh.md)", "](zh/)")
    (src / "index.md").write_text(text, encoding="utf-8")


def mathjax(src: Path) -> None:
    """MathJax 3 served from the site itself (the site must work without internet), with its configuration."""
    dest = src / MATHJAX
    npm_dir = BUILD / "npm"
    node = npm_dir / "node_modules" / "mathjax" / "es5"
    if not (node / "tex-mml-chtml.js").is_file():
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(npm_dir),
                        "mathjax@3"], check=True)
    shutil.copytree(node, dest.parent, dirs_exist_ok=True)
    (src / MATHJAX_CONFIG).parent.mkdir(parents=True, exist_ok=True)
    (src / MATHJAX_CONFIG).write_text(MATHJAX_CONFIG_JS, encoding="utf-8")


ALTERNATE = re.compile(r'(<a href=")[^"]*(" hreflang="(en|zh)")')


def on_post_page(output: str, page, config) -> str:
    """mkdocs hook: drop the nbconvert template's remote MathJax 2 and mermaid loaders from notebook pages, and
    point the language switch at the same page in the other language (the Chinese site is the English one's
    `zh/` folder, with the same page paths), by a relative link so the site works under any address."""
    output = NBCONVERT_MERMAID.sub("", NBCONVERT_MATHJAX.sub("", output))
    here_zh = config["theme"]["language"] == "zh"
    up = "../" * page.url.count("/")  # from this page to its site's root

    def link(m: re.Match) -> str:
        root = {(False, "en"): up, (False, "zh"): up + "zh/", (True, "en"): up + "../", (True, "zh"): up}
        return f"{m[1]}{root[here_zh, m[3]]}{page.url}{m[2]}"

    return ALTERNATE.sub(link, output)


def assemble(src: Path, recipes: tuple[dict[str, list[str]], dict[str, str]], zh: bool = False) -> dict:
    """Write one language's site sources into `src`; return its mkdocs configuration."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    home_page(src, zh)
    docs = sorted((ROOT / "docs").glob("*.md"))
    for md in docs:
        shutil.copy(md, src / md.name)
    if zh:
        shutil.copy(i18n.TRANSLATIONS / "glossary.md", src / "glossary.md")
    book = []
    for folder, title in SECTIONS:
        notebooks = book_order(folder)
        if not notebooks:
            continue
        (src / "notebooks" / folder).mkdir(parents=True, exist_ok=True)
        pages = []
        for nb in notebooks:
            if zh:  # generated here from the English notebook and its translation: never a stale copy
                content, _ = i18n.translate_notebook(nb)
                i18n.write_notebook(content, src / "notebooks" / folder / nb.name)
                pages.append({notebook_title(nb, content): f"notebooks/{folder}/{nb.name}"})
            else:
                shutil.copy(nb, src / "notebooks" / folder / nb.name)
                pages.append({notebook_title(nb): f"notebooks/{folder}/{nb.name}"})
        for extra in (ROOT / "notebooks" / folder).iterdir():  # images referenced by notebooks
            if extra.is_file() and extra.suffix.lower() in {".png", ".svg", ".jpg", ".gif"}:
                shutil.copy(extra, src / "notebooks" / folder / extra.name)
        book.append({SECTIONS_ZH[folder] if zh else title: pages})
    mathjax(src)
    nav = [{"首页" if zh else "Home": "index.md"}, *book,
           {"训练配方" if zh else "Recipes": recipe_pages(src, recipes[1], recipes[0], zh)}]
    if zh:
        nav.append({"术语表": "glossary.md"})
    nav += [{markdown_title(md) + ("（英文）" if zh else ""): md.name} for md in docs]
    return {
        "site_name": "pytorch-in-action" + (" 中文版" if zh else ""),
        "site_description": "从零用 PyTorch 实现主流深度学习组件，并证明与官方实现一致" if zh else
                            "Deep-learning pieces from scratch in PyTorch, proven equal to the real ones",
        "docs_dir": str(src),
        "use_directory_urls": True,
        "theme": {
            "name": "material",
            "language": "zh" if zh else "en",
            "font": False,  # no Google Fonts: the site works offline with the system fonts
            "palette": [
                {"scheme": "default", "primary": "deep orange", "accent": "deep orange",
                 "toggle": {"icon": "material/weather-night", "name": "Dark mode"}},
                {"scheme": "slate", "primary": "deep orange", "accent": "deep orange",
                 "toggle": {"icon": "material/weather-sunny", "name": "Light mode"}},
            ],
            "icon": {"logo": "material/fire"},
            "features": ["content.code.copy", "navigation.sections", "navigation.top", "navigation.footer",
                         "search.highlight", "search.suggest", "search.share", "toc.follow"],
        },
        "hooks": [str(Path(__file__).resolve())],
        # jieba (installed) segments Chinese text in the search index with zero-width spaces: split on them too
        "plugins": [{"search": {"lang": ["zh", "en"] if zh else ["en"], "separator": r"[\s\u200b\-]+"}},
                    {"mkdocs-jupyter": {"execute": False, "include_source": True,
                                        "custom_mathjax_url": MATHJAX}}],
        "markdown_extensions": ["tables", "admonition", "attr_list", "md_in_html", "pymdownx.superfences",
                                {"toc": {"permalink": True}},
                                {"pymdownx.arithmatex": {"generic": True}},
                                {"pymdownx.highlight": {"anchor_linenums": False}}],
        "extra": {"alternate": [{"name": "English", "link": "/", "lang": "en"},
                                {"name": "中文", "link": "/zh/", "lang": "zh"}]},
        "extra_javascript": [MATHJAX_CONFIG, MATHJAX],
        "nav": nav,
    }


def mkdocs_build(config: dict, out: Path, cfg_path: Path) -> bool:
    config["site_dir"] = str(out.resolve())
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--quiet", "--clean", "-f", str(cfg_path)],
                         capture_output=True, text=True)
    errors = [line for line in res.stderr.splitlines() if re.match(r"(ERROR|WARNING)", line)]
    if res.returncode != 0 or errors:
        print(res.stderr[-4000:], file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "site", help="the English site; the Chinese one is OUT/zh")
    ap.add_argument("--lang", nargs="+", choices=["en", "zh"], default=["en", "zh"], help="languages to build")
    args = ap.parse_args(argv)
    recipes = recipe_help()
    if "en" in args.lang:  # first: its --clean would remove OUT/zh
        if not mkdocs_build(assemble(SRC, recipes), args.out, BUILD / "mkdocs.yml"):
            return 1
    if "zh" in args.lang:
        if not mkdocs_build(assemble(SRC_ZH, recipes, zh=True), args.out / "zh", BUILD / "mkdocs.zh.yml"):
            return 1
    print(f"site written to {args.out}" + (f" (Chinese: {args.out / 'zh'})" if "zh" in args.lang else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
