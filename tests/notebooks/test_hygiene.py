"""The stored book is clean (docs/book-style.md): figures are not switched off, and neither the outputs nor
the prose describe the machine that executed it (home folders, installed-package paths, object addresses,
widget warnings, core counts)."""

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from i18n import english_notebooks  # noqa: E402

NOTEBOOKS = english_notebooks()  # the sources; the Chinese editions share their outputs
IDS = [str(p.relative_to(ROOT / "notebooks")) for p in NOTEBOOKS]

OUTPUT_RULES = {  # what no stored output may contain -> why
    re.compile(r"IProgress not found"): "tqdm.auto without ipywidgets: use plain tqdm or silence it",
    re.compile(r"/root/|/home/[^/\s]+/|/Users/[^/\s]+/|[A-Za-z]:\\{1,2}Users\\{1,2}", re.I):
        "a home folder of the machine that ran the book",
    re.compile(r"site-packages"): "a path into the installed packages",
    re.compile(r" at 0x[0-9a-fA-F]+"): "an object repr with a memory address",
}
SOURCE_RULES = {re.compile(r"matplotlib\.use\("): "figures must render and be stored: no matplotlib.use("}
MARKDOWN_RULES = {re.compile(r"2-core|two-core|busy machine", re.I): "prose about the build machine"}


def output_text(output: dict) -> str:
    """Everything a stored output shows as text: streams, text/* data and tracebacks."""
    parts = ["".join(output.get("text", ""))]
    parts += ["".join(v) if isinstance(v, list) else str(v)
              for k, v in output.get("data", {}).items() if k.startswith("text/")]
    parts += output.get("traceback", [])
    return "\n".join(parts)


def violations(nb: dict) -> list[str]:
    """One line per broken rule: cell index, the rule, and the offending text."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"])
        texts = []
        if cell["cell_type"] == "code":
            texts += [(source, SOURCE_RULES)]
            texts += [(output_text(o), OUTPUT_RULES) for o in cell.get("outputs", [])]
        elif cell["cell_type"] == "markdown":
            texts += [(source, MARKDOWN_RULES)]
        for text, rules in texts:
            for pattern, why in rules.items():
                if m := pattern.search(text):
                    snippet = text[max(0, m.start() - 40):m.end() + 40].replace("\n", " ")
                    found.append(f"cell {i}: {why}: ...{snippet}...")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_clean(path):
    assert violations(json.loads(path.read_text(encoding="utf-8"))) == []


def _code(source: str, *outputs: dict) -> dict:
    return {"cell_type": "code", "source": [source], "outputs": list(outputs), "metadata": {}}


def test_the_check_catches_each_kind_of_violation():
    stream = {"output_type": "stream", "name": "stderr"}
    nb = {"cells": [
        _code("import matplotlib\nmatplotlib.use('Agg')"),
        _code("x", {**stream, "text": ["TqdmWarning: IProgress not found. Please update jupyter"]}),
        _code("x", {"output_type": "execute_result", "data": {"text/plain": ["<torch._C.Generator at 0x7f36>"]}}),
        _code("x", {**stream, "text": "/root/.cache/pytorch_in_action/digits\n"}),
        _code("x", {**stream, "text": "C:\\Users\\ada\\data"}),
        _code("x", {"output_type": "error", "traceback": ["/opt/venv/lib/python3.11/site-packages/x.py"]}),
        {"cell_type": "markdown", "source": ["On this 2-core machine it takes a minute."], "metadata": {}},
        {"cell_type": "markdown", "source": ["Timings vary on a Busy Machine."], "metadata": {}},
    ]}
    found = violations(nb)
    assert [line.split(":")[0] for line in found] == [f"cell {i}" for i in range(8)], found


def test_clean_cells_pass():
    nb = {"cells": [
        _code("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()",
              {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": ["<Figure size 640x480>"]}}),
        _code("_ = torch.manual_seed(0)\nprint(path.name)", {"output_type": "stream", "text": "model\n"}),
        {"cell_type": "markdown", "source": ["Each worker runs on one core. The home folder is `~`."], "metadata": {}},
    ]}
    assert violations(nb) == []
