"""`make bench` (tools/run_benchmarks.py): what it refuses, in one line and without touching docs/benchmarks.md."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, says", [
    ("text_cls", "text_cls is a result experiment with a hand-written section: run benchmarks/bench_text_cls.py"),
    ("translate_search", "translate_search is a result experiment"),
    ("convv", "no benchmark 'convv'; there are: attention, bert, conv,"),
])
def test_refused_names_are_one_line_and_write_nothing(name, says):
    doc = ROOT / "docs" / "benchmarks.md"
    before = doc.read_bytes()
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "run_benchmarks.py"), name],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    error = [line for line in res.stderr.splitlines() if not line.startswith("usage:")]
    assert len(error) == 1 and says in error[0], res.stderr
    assert doc.read_bytes() == before
