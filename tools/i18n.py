"""The book's Chinese edition: prose translations kept beside the English notebooks, notebooks generated from both.

The English notebook is the one source of code, outputs and figures. A translation file holds prose only: the
Chinese text of each markdown cell, keyed by the cell's id and the hash of the English text it translates.
The Chinese notebook is the English one with its markdown cells replaced, so its code and outputs cannot
drift from the English edition.

    python tools/i18n.py status            # per notebook: cells translated, missing, stale (exit 1 if any)
    python tools/i18n.py status --cells    # ... and every missing or stale cell by id
    python tools/i18n.py sync [NB ...]     # add missing / stale cells to the translation files, marked `todo`
    python tools/i18n.py check             # status + what a translation must keep (code, math, links, numbers)
    python tools/i18n.py build [--strict]  # write NAME.zh.ipynb beside every English notebook

A translation file is Markdown, one entry per markdown cell, in the notebook's order:

    <!-- cell 5d3c1e2a en:1a2b3c4d5e6f -->
    # 01 · 张量
    ...

`en:` is the first 12 hex digits of the SHA-256 of the English cell's text. `sync` writes a new or changed
cell as `<!-- cell ID en:HASH todo -->` followed by its English text; translating it means replacing the
text and deleting ` todo`. An entry marked `todo`, or whose hash is not the English cell's current hash,
counts as missing.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LANG = "zh"
TRANSLATIONS = ROOT / "i18n" / LANG
SUFFIX = f".{LANG}.ipynb"
PREVIOUS = "<!-- previous translation:"
ENTRY = re.compile(r"^<!-- cell (\S+) en:([0-9a-f]{12})( todo)? -->[ \t]*$", re.M)


def english_notebooks(root: Path = NOTEBOOKS) -> list[Path]:
    """The book's source notebooks: every `.ipynb` under notebooks/ except generated translations."""
    return sorted(p for p in root.rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts and not p.name.endswith(SUFFIX))


def translated_path(notebook: Path) -> Path:
    """notebooks/models/gru.ipynb -> notebooks/models/gru.zh.ipynb (beside it, so its imports and files work)."""
    return notebook.with_name(notebook.stem + SUFFIX)


def translation_file(notebook: Path) -> Path:
    """notebooks/models/gru.ipynb -> i18n/zh/models/gru.md"""
    return TRANSLATIONS / notebook.relative_to(NOTEBOOKS).with_suffix(".md")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def markdown_cells(nb: dict) -> list[tuple[str, str]]:
    """(cell id, text) of every markdown cell, in order."""
    return [(c["id"], "".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "markdown"]


@dataclass
class Entry:
    cell_id: str
    en_hash: str
    todo: bool
    text: str


def read_translations(path: Path) -> dict[str, Entry]:
    if not path.is_file():
        return {}
    content = path.read_text(encoding="utf-8")
    marks = list(ENTRY.finditer(content))
    entries = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(content)
        entries[m[1]] = Entry(m[1], m[2], bool(m[3]), content[m.end():end].strip("\n").rstrip())
    return entries


def write_translations(path: Path, entries: list[Entry], notebook: Path) -> None:
    rel = notebook.relative_to(ROOT).as_posix()
    parts = [f"<!-- 《{rel}》的中文译文：只有文字。代码与输出取自英文原文。格式见 tools/i18n.py。 -->\n"]
    for e in entries:
        parts.append(f"<!-- cell {e.cell_id} en:{e.en_hash}{' todo' if e.todo else ''} -->\n{e.text}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    tmp.replace(path)


@dataclass
class Status:
    notebook: Path
    cells: int
    missing: list[str]   # no entry, or an entry marked todo
    stale: list[str]     # an entry for an older English text
    orphans: list[str]   # entries for cells the notebook no longer has


def status(notebook: Path, cells: list[tuple[str, str]] | None = None,
           entries: dict[str, Entry] | None = None) -> Status:
    """`cells` and `entries`, when given, are the notebook's markdown cells and translations already read."""
    cells = markdown_cells(load_notebook(notebook)) if cells is None else cells
    entries = read_translations(translation_file(notebook)) if entries is None else entries
    missing = [cid for cid, _ in cells if cid not in entries or entries[cid].todo]
    stale = [cid for cid, text in cells
             if cid in entries and not entries[cid].todo and entries[cid].en_hash != text_hash(text)]
    ids = {cid for cid, _ in cells}
    return Status(notebook, len(cells), missing, stale, [cid for cid in entries if cid not in ids])


def sync(notebook: Path) -> Status:
    """Rewrite the translation file in the notebook's cell order: current entries kept, new or changed
    English cells added as `todo` entries holding the English text, entries of removed cells dropped."""
    entries = read_translations(translation_file(notebook))
    out = []
    for cid, text in markdown_cells(load_notebook(notebook)):
        old = entries.get(cid)
        if old and not old.todo and old.en_hash == text_hash(text):
            out.append(old)
        elif old and not old.todo:  # the English changed: its new text to translate, the old translation below
            out.append(Entry(cid, text_hash(text), True, f"{text.strip()}\n\n{PREVIOUS}\n{old.text}\n-->"))
        elif old and PREVIOUS in old.text:  # still todo, English changed again: keep the previous translation
            out.append(Entry(cid, text_hash(text), True, f"{text.strip()}\n\n{old.text[old.text.index(PREVIOUS):]}"))
        else:
            out.append(Entry(cid, text_hash(text), True, text.strip()))  # a todo entry holds the current English
    write_translations(translation_file(notebook), out, notebook)
    return status(notebook)


# --- what a translation must keep -----------------------------------------------------------------------------

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
DISPLAY_MATH = re.compile(r"\$\$.+?\$\$", re.S)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)[^$\n]+?(?<!\\)\$")
CODE_SPAN = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.S)
LINK_TARGET = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_SRC = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
BARE_URL = re.compile(r"(?<![(\"'])https?://[^\s)>\]]+")
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
# a line break inside a paragraph renders as a space; between two Chinese characters (or full-width punctuation)
# that space is a typo
CJK_LINE_BREAK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]\n[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def protected(text: str) -> dict[str, list[str]]:
    """What the Chinese text must contain exactly: fenced code, math, code spans, link targets, URLs, numbers.

    Numbers are looked for in the prose only (code, math and link targets are compared whole), with thousands
    separators removed on both sides ("16,174" may be written "16174").
    """
    found: dict[str, list[str]] = {}
    rest = text
    for name, pattern in [("code block", FENCE), ("math", DISPLAY_MATH), ("code", CODE_SPAN),
                          ("math", INLINE_MATH)]:
        found.setdefault(name, []).extend(m[0].strip() for m in pattern.finditer(rest))
        rest = pattern.sub(" ", rest)
    found["link"] = LINK_TARGET.findall(rest) + HTML_SRC.findall(rest)
    rest = HTML_SRC.sub(" ", LINK_TARGET.sub("]", rest))
    found["link"] += BARE_URL.findall(rest)
    rest = BARE_URL.sub(" ", rest)
    found["number"] = [n.replace(",", "") for n in NUMBER.findall(rest)]
    return {k: v for k, v in found.items() if v}


def lost(english: str, chinese: str) -> list[str]:
    """The protected pieces of the English cell that the Chinese one does not contain."""
    prose = chinese
    for pattern in (FENCE, DISPLAY_MATH, CODE_SPAN, INLINE_MATH):
        prose = pattern.sub(" ", prose)
    digits = NUMBER.findall(prose)
    numbers = [n.replace(",", "") for n in digits]
    problems = []
    for kind, pieces in protected(english).items():
        for piece in pieces:
            if kind == "number":
                if piece not in numbers:
                    problems.append(f"number {piece}")
                    continue
                numbers.remove(piece)
            elif piece not in chinese:
                problems.append(f"{kind} {piece[:60]!r}")
    return problems


def check(notebook: Path) -> list[str]:
    """Every problem of one notebook's translation, one line each."""
    cells = markdown_cells(load_notebook(notebook))
    entries = read_translations(translation_file(notebook))
    st = status(notebook, cells, entries)
    rel = notebook.relative_to(ROOT).as_posix()
    problems = [f"{rel}: cell {cid} not translated" for cid in st.missing]
    problems += [f"{rel}: cell {cid} translates an older English text" for cid in st.stale]
    problems += [f"{rel}: entry {cid} is for a cell the notebook no longer has" for cid in st.orphans]
    for cid, text in cells:
        if cid in st.missing or cid in st.stale:
            continue
        problems += [f"{rel}: cell {cid} lost {p}" for p in lost(text, entries[cid].text)]
        if CJK_LINE_BREAK.search(FENCE.sub(" ", entries[cid].text)):
            problems.append(f"{rel}: cell {cid} breaks a line between two Chinese characters (shown as a space)")
        if PREVIOUS in entries[cid].text:
            problems.append(f"{rel}: cell {cid} still holds its previous translation")
    return problems


# --- the Chinese notebooks ------------------------------------------------------------------------------------

def translate_notebook(notebook: Path, strict: bool = False) -> tuple[dict, int]:
    """The Chinese notebook: the English one with each markdown cell's text replaced by its current
    translation (English where a translation is missing or stale, unless `strict`). Returns it and the number
    of cells left in English."""
    nb = load_notebook(notebook)
    entries = read_translations(translation_file(notebook))
    out = copy.deepcopy(nb)
    untranslated = 0
    for cell in out["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        entry = entries.get(cell["id"])
        text = "".join(cell["source"])
        if entry and not entry.todo and entry.en_hash == text_hash(text):
            cell["source"] = entry.text.splitlines(keepends=True)
        elif strict:
            raise SystemExit(f"{notebook.relative_to(ROOT)}: cell {cell['id']} has no current translation "
                             f"(run `python tools/i18n.py status --cells`)")
        else:
            untranslated += 1
    out["metadata"]["pytorch_in_action"] = {"language": "zh-CN", "source": notebook.name}
    return out, untranslated


def write_notebook(nb: dict, path: Path) -> None:
    text = json.dumps(nb, ensure_ascii=False, indent=1) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build(notebooks: list[Path], strict: bool = False) -> int:
    left = 0
    for notebook in notebooks:
        nb, untranslated = translate_notebook(notebook, strict)
        write_notebook(nb, translated_path(notebook))
        left += untranslated
        if untranslated:
            print(f"{translated_path(notebook).relative_to(ROOT)}: {untranslated} cell(s) left in English",
                  file=sys.stderr)
    return left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="See the module docstring for the translation file format.")
    sub = ap.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="cells translated, missing and stale, per notebook")
    st.add_argument("--cells", action="store_true", help="list every missing or stale cell")
    for name, text in [("sync", "add missing and stale cells to the translation files, marked todo"),
                       ("check", "status, and what each translation must keep"),
                       ("build", "write NAME.zh.ipynb beside every English notebook")]:
        p = sub.add_parser(name, help=text)
        p.add_argument("notebooks", nargs="*", type=Path, help="English notebooks (default: all)")
        if name == "build":
            p.add_argument("--strict", action="store_true", help="fail on a missing or stale translation")
    args = ap.parse_args(argv)
    chosen = [p.resolve() for p in getattr(args, "notebooks", [])] or english_notebooks()
    for p in chosen:
        if not p.is_file() or p.name.endswith(SUFFIX) or NOTEBOOKS not in p.parents:
            ap.error(f"{p}: not an English notebook under notebooks/")
    if args.command == "status":
        rows = [status(p) for p in chosen]
        bad = 0
        for s in rows:
            done = s.cells - len(s.missing) - len(s.stale)
            bad += len(s.missing) + len(s.stale) + len(s.orphans)
            print(f"{done:3d}/{s.cells:<3d} {len(s.missing):3d} missing {len(s.stale):3d} stale  "
                  f"{s.notebook.relative_to(ROOT)}")
            if args.cells:
                for cid in s.missing:
                    print(f"        missing {cid}")
                for cid in s.stale:
                    print(f"        stale   {cid}")
        print(f"{sum(s.cells for s in rows) - sum(len(s.missing) + len(s.stale) for s in rows)} of "
              f"{sum(s.cells for s in rows)} markdown cells translated")
        return 1 if bad else 0
    if args.command == "sync":
        for p in chosen:
            s = sync(p)
            print(f"{translation_file(p).relative_to(ROOT)}: {len(s.missing)} cell(s) to translate")
        return 0
    if args.command == "check":
        problems = [line for p in chosen for line in check(p)]
        print("\n".join(problems) if problems else f"{len(chosen)} translations complete and consistent")
        return 1 if problems else 0
    left = build(chosen, args.strict)
    print(f"{len(chosen)} Chinese notebook(s) written" + (f", {left} cell(s) left in English" if left else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
