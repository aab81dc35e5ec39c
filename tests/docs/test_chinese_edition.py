"""The Chinese edition (tools/i18n.py): every markdown cell of every English notebook has a current Chinese
translation that keeps the cell's code, math, links and numbers; each stored `.zh.ipynb` is exactly what the
tool generates, so its code cells and outputs are the English notebook's; README.zh.md runs the README's
commands; and the tool catches what it says it catches."""

import json
import re
import sys
from pathlib import Path

import pytest
from piatest import readme_commands

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import i18n  # noqa: E402

NOTEBOOKS = i18n.english_notebooks()
IDS = [str(p.relative_to(i18n.NOTEBOOKS)) for p in NOTEBOOKS]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_every_markdown_cell_has_a_current_translation_keeping_code_math_links_and_numbers(notebook):
    assert i18n.check(notebook) == [], "fix the translation (python tools/i18n.py status --cells)"
    entries = i18n.read_translations(i18n.translation_file(notebook))
    for cell_id, _ in i18n.markdown_cells(i18n.load_notebook(notebook)):
        assert CJK.search(entries[cell_id].text), f"cell {cell_id}: no Chinese in its translation"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_the_stored_chinese_notebook_is_generated_from_the_english_one(notebook):
    stored_path = i18n.translated_path(notebook)
    assert stored_path.is_file(), f"{stored_path.name} missing: run python tools/i18n.py build"
    stored = json.loads(stored_path.read_text(encoding="utf-8"))
    expected, _ = i18n.translate_notebook(notebook, strict=True)
    assert stored == expected, f"{stored_path.name} is stale: run python tools/i18n.py build"
    english = i18n.load_notebook(notebook)
    assert len(stored["cells"]) == len(english["cells"])
    for zh, en in zip(stored["cells"], english["cells"]):
        assert (zh["id"], zh["cell_type"]) == (en["id"], en["cell_type"])
        if en["cell_type"] == "code":  # the code and everything it printed or drew: the English run itself
            assert zh == en, f"code cell {en['id']} differs from the English notebook"
        else:
            assert CJK.search("".join(zh["source"])), f"markdown cell {en['id']} is not in Chinese"


def test_every_chinese_notebook_has_its_english_source():
    stray = [p for p in i18n.NOTEBOOKS.rglob("*" + i18n.SUFFIX)
             if not p.with_name(p.name.removesuffix(i18n.SUFFIX) + ".ipynb").is_file()]
    assert stray == []
    orphans = [p for p in i18n.TRANSLATIONS.rglob("*.md") if p.name != "glossary.md"
               and not (i18n.NOTEBOOKS / p.relative_to(i18n.TRANSLATIONS).with_suffix(".ipynb")).is_file()]
    assert orphans == []


def test_readme_zh_runs_the_readme_commands_and_the_two_link_each_other():
    english, chinese = ROOT / "README.md", ROOT / "README.zh.md"
    assert readme_commands(chinese) == readme_commands(english)
    assert "](README.zh.md)" in english.read_text(encoding="utf-8").split("\n## ", 1)[0]
    assert "](README.md)" in chinese.read_text(encoding="utf-8").split("\n## ", 1)[0]
    linked = set(re.findall(r"\]\((notebooks/[^)]+\.zh\.ipynb)\)", chinese.read_text(encoding="utf-8")))
    assert linked == {str(i18n.translated_path(p).relative_to(ROOT)) for p in NOTEBOOKS}


# --- the tool itself, on a notebook of its own ------------------------------------------------------------------

@pytest.fixture
def book(tmp_path, monkeypatch):
    """A one-notebook book in tmp_path: notebooks/sec/nb.ipynb with two markdown cells and a code cell."""
    monkeypatch.setattr(i18n, "ROOT", tmp_path)
    monkeypatch.setattr(i18n, "NOTEBOOKS", tmp_path / "notebooks")
    monkeypatch.setattr(i18n, "TRANSLATIONS", tmp_path / "i18n" / "zh")
    nb_path = tmp_path / "notebooks" / "sec" / "nb.ipynb"
    nb_path.parent.mkdir(parents=True)
    cells = [{"cell_type": "markdown", "id": "a1", "metadata": {}, "source": ["# 01 · Tensors\n", "\n",
                                                                              "Call `x.sum()` on 16,174 rows."]},
             {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1, "source": ["print(1)"],
              "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}]},
             {"cell_type": "markdown", "id": "b2", "metadata": {},
              "source": ["The loss is $-\\log p$ ([docs](../docs/x.md))."]}]
    nb_path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return nb_path


def _translate(nb_path, texts: dict[str, str]) -> None:
    path = i18n.translation_file(nb_path)
    content = path.read_text(encoding="utf-8")
    for cell_id, text in texts.items():
        content = re.sub(rf"(<!-- cell {cell_id} en:[0-9a-f]{{12}}) todo -->\n.*?(?=\n<!-- cell |\Z)",
                         lambda m, t=text: f"{m[1]} -->\n{t}\n", content, flags=re.S)
    path.write_text(content, encoding="utf-8")


def test_sync_then_translate_then_build(book):
    st = i18n.sync(book)
    assert (st.cells, st.missing, st.stale) == (2, ["a1", "b2"], [])
    assert "Call `x.sum()`" in i18n.translation_file(book).read_text(encoding="utf-8")  # the text to translate
    _translate(book, {"a1": "# 01 · 张量\n\n对 16174 行调用 `x.sum()`。"})
    assert i18n.check(book) == ["notebooks/sec/nb.ipynb: cell b2 not translated"]
    nb, left = i18n.translate_notebook(book)
    assert left == 1 and nb["cells"][2]["source"] == ["The loss is $-\\log p$ ([docs](../docs/x.md))."]
    with pytest.raises(SystemExit, match="cell b2 has no current translation"):
        i18n.translate_notebook(book, strict=True)
    _translate(book, {"b2": "损失是 $-\\log p$（见[文档](../docs/x.md)）。"})
    assert i18n.check(book) == []
    assert i18n.build([book], strict=True) == 0
    zh = json.loads(i18n.translated_path(book).read_text(encoding="utf-8"))
    assert "".join(zh["cells"][0]["source"]) == "# 01 · 张量\n\n对 16174 行调用 `x.sum()`。"
    assert zh["cells"][1] == json.loads(book.read_text())["cells"][1]


def test_a_changed_english_cell_is_stale_until_translated_again(book):
    i18n.sync(book)
    _translate(book, {"a1": "# 01 · 张量\n\n对 16,174 行调用 `x.sum()`。", "b2": "损失是 $-\\log p$（[文档](../docs/x.md)）。"})
    assert i18n.check(book) == []
    nb = json.loads(book.read_text())
    nb["cells"][0]["source"] = ["# 01 · Tensors\n", "\n", "Call `x.mean()` on 16,174 rows."]
    book.write_text(json.dumps(nb))
    assert i18n.status(book).stale == ["a1"]
    assert i18n.translate_notebook(book)[1] == 1  # the stale cell stays English in the generated notebook
    i18n.sync(book)
    text = i18n.translation_file(book).read_text(encoding="utf-8")
    assert "Call `x.mean()`" in text and "对 16,174 行调用 `x.sum()`" in text  # new English, old Chinese kept
    assert i18n.status(book).missing == ["a1"]
    nb["cells"][0]["source"] = ["# 01 · Tensors\n", "\n", "Call `x.max()` on 16,174 rows."]
    book.write_text(json.dumps(nb))
    i18n.sync(book)  # a cell still to translate shows the English as it is now
    text = i18n.translation_file(book).read_text(encoding="utf-8")
    assert "Call `x.max()`" in text and "Call `x.mean()`" not in text and "对 16,174 行调用 `x.sum()`" in text


@pytest.mark.parametrize(("english", "chinese", "lost"), [
    ("Call `x.sum()` twice.", "调用两次 `x.sum()`。", []),
    ("Call `x.sum()` twice.", "调用两次 x.sum()。", ["code '`x.sum()`'"]),
    ("It is $a^2$.", "它是 $a^{2}$。", ["math '$a^2$'"]),
    ("See [the docs](docs/a.md).", "见[文档](docs/b.md)。", ["link 'docs/a.md'"]),
    ("16,174 pairs, 0.5 s, 3 runs", "16174 对，0.5 秒，三次运行", ["number 3"]),
    ("Run 3 and 3 again", "运行 3 次", ["number 3"]),  # each occurrence counts
    ("See https://tatoeba.org now", "见 https://tatoeba.org", []),
    ("```python\nx = 1\n```", "```python\nx = 2\n```", ["code block '```python\\nx = 1\\n```'"]),
])
def test_lost_names_what_the_translation_dropped(english, chinese, lost):
    assert i18n.lost(english, chinese) == lost


def test_check_flags_a_line_break_between_chinese_characters(book):
    i18n.sync(book)
    _translate(book, {"a1": "# 01 · 张量\n\n对 16,174 行调用\n`x.sum()`。", "b2": "损失是 $-\\log p$（[文档](../docs/x.md)）。"})
    assert i18n.check(book) == []  # a break before code is a space there anyway
    _translate(book, {})
    text = i18n.translation_file(book).read_text(encoding="utf-8").replace("行调用", "行\n调用")
    i18n.translation_file(book).write_text(text, encoding="utf-8")
    assert i18n.check(book) == ["notebooks/sec/nb.ipynb: cell a1 breaks a line between two Chinese characters "
                                "(shown as a space)"]
