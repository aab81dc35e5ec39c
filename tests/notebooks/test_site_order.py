"""The site reads as a book: each section lists its notebooks in the README's order, with titles in one style."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402

README = (ROOT / "README.md").read_text(encoding="utf-8")
FOLDERS = [folder for folder, _ in build_site.SECTIONS if any((ROOT / "notebooks" / folder).glob("*.ipynb"))]


@pytest.mark.parametrize("folder", FOLDERS)
def test_each_section_follows_the_readme_tables(folder):
    in_readme = re.findall(rf"\]\(notebooks/{folder}/([^)]+\.ipynb)\)", README)
    order = [p.name for p in build_site.book_order(folder)]
    print(folder, order)
    assert order == in_readme


def test_the_order_is_the_books_not_the_alphabets():
    assert [p.stem for p in build_site.book_order("models")][:4] == ["convolution", "simple_rnn", "lstm", "gru"]
    assert build_site.book_order("transformers")[0].stem == "tutorials"


@pytest.mark.parametrize("folder", FOLDERS)
def test_titles_are_in_one_style(folder):
    for nb in build_site.book_order(folder):
        title = build_site.notebook_title(nb)
        numbered = re.fullmatch(r"\d\d · (.+)", title)
        words = numbered.group(1) if numbered else title
        assert "·" not in words and "_" not in words and ":" not in words, title
        assert words[0].isupper() or words[0].isdigit(), title
        assert "from scratch" not in title, title  # the section's name says it
        assert bool(numbered) == nb.stem[:2].isdigit(), title


def _notebook(tmp_path: Path, name: str, heading: str) -> Path:
    cells = [{"cell_type": "code", "source": ["# a comment, not a heading"], "metadata": {}, "outputs": []},
             {"cell_type": "markdown", "source": [heading + "\n", "\n", "Some text."], "metadata": {}}]
    path = tmp_path / name
    path.write_text(json.dumps({"cells": cells}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "heading", "title"), [
    ("06_Finetune.ipynb", "# 06 · Fine-tuning: transfer learning, offline", "06 · Fine-tuning"),
    ("seq2seq.ipynb", "# seq2seq · English → Chinese translation, end to end", "English → Chinese translation"),
    ("gru.ipynb", "# GRU from scratch", "GRU"),
    ("transformer.ipynb", "# The Transformer, from scratch", "The Transformer"),
    ("language_modeling.ipynb", "# language_modeling · character and subword LMs", "Character and subword LMs"),
    ("no_heading.ipynb", "Just prose.", "No heading"),
])
def test_notebook_title(tmp_path, name, heading, title):
    assert build_site.notebook_title(_notebook(tmp_path, name, heading)) == title


def test_notebooks_missing_from_the_readme_come_last_by_name(tmp_path, monkeypatch):
    (tmp_path / "notebooks" / "models").mkdir(parents=True)
    for name in ("b.ipynb", "a.ipynb", "z.ipynb", "c.ipynb"):
        _notebook(tmp_path / "notebooks" / "models", name, "# x")
    (tmp_path / "README.md").write_text("| [z](notebooks/models/z.ipynb) |\n| [b](notebooks/models/b.ipynb) |\n"
                                        "| [gone](notebooks/models/gone.ipynb) |\n", encoding="utf-8")
    monkeypatch.setattr(build_site, "ROOT", tmp_path)
    assert [p.name for p in build_site.book_order("models")] == ["z.ipynb", "b.ipynb", "a.ipynb", "c.ipynb"]
