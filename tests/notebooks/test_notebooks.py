"""Every notebook under notebooks/ runs top to bottom in small mode, and is stored executed in order."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from nbrun import find_notebooks, run_notebook  # noqa: E402

NOTEBOOKS = find_notebooks([str(ROOT / "notebooks")])
IDS = [str(p.relative_to(ROOT / "notebooks")) for p in NOTEBOOKS]


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_small_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PIA_CACHE", str(tmp_path.parent / "pia-cache"))
    run_notebook(path, small=True, inplace=False)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stored_executed(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert [c.get("execution_count") for c in code] == list(range(1, len(code) + 1)), "run `make book`"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, "stored notebook has an error output"
