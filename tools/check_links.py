"""Fail on broken internal links and missing images in the READMEs, docs/*.md, the translations under i18n/
and every notebook's markdown (the generated Chinese notebooks included).

`python tools/check_links.py` prints one line per broken reference and exits 1 if there is any.
External links (http/https/mailto) are not fetched: the project must build offline.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HTML_SRC = re.compile(r"<(?:img|a)\s[^>]*(?:src|href)=\"([^\"]+)\"")


def markdown_sources() -> list[tuple[Path, str]]:
    found = [(p, p.read_text(encoding="utf-8")) for p in (ROOT / "README.md", ROOT / "README.zh.md") if p.is_file()]
    found += [(p, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "i18n").glob("**/*.md"))]
    found += [(p, p.read_text(encoding="utf-8")) for p in sorted((ROOT / "docs").glob("**/*.md"))]
    for nb in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        found.append((nb, "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")))
    return found


def broken_links() -> list[str]:
    problems = []
    for path, text in markdown_sources():
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are examples
        for target in LINK.findall(text) + HTML_SRC.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # external (not fetched) or an in-page anchor
            file_part = target.split("#", 1)[0]
            if file_part and not (path.parent / file_part).exists():
                problems.append(f"{path.relative_to(ROOT)}: broken link {target}")
    return problems


def main() -> int:
    problems = broken_links()
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
