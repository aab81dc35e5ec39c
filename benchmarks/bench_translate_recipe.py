"""The default `pia translate train` on the bundled Tatoeba corpus: training minutes and test BLEU beside a baseline.

Goal: test BLEU >= 25 with beam 4 (aim: 30) after at most 10 minutes of training on a laptop CPU. The run is the
command a user types, in a subprocess; it ends by scoring greedy and beam search (beam 4) on the run's whole test
split, beside the word-by-word dictionary baseline fitted on the same training split. The script reports the
wall minutes and the CPU minutes of the command (the latter tell what the run cost on a machine shared with
other jobs).

    .venv/bin/python benchmarks/bench_translate_recipe.py [--quick] [-- extra pia flags]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from _timing import markdown_table  # noqa: E402


def cpu_info() -> str:
    text = Path("/proc/cpuinfo").read_text(errors="ignore") if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    units = sorted({f for f in ("amx_bf16", "avx512_bf16") if f in text.split()})
    return f"{name}, {os.cpu_count()} cores, bf16 units: {', '.join(units) or 'none'}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a 1-minute budget (proves nothing about the goal)")
    ap.add_argument("extra", nargs="*", help="more `pia translate train` flags (after --)")
    args = ap.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="bench-translate-")) / "run"
    flags = ["--out", str(out), "--no-progress", *(["--minutes", "1"] if args.quick else []), *args.extra]
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytorch_in_action", "translate", "train", *flags],
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"pia translate train failed:\n{res.stderr[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_min = (usage.ru_utime + usage.ru_stime) / 60
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    test = json.loads((out / "test_results.json").read_text())
    rows = [[m["epoch"], m["step"], f"{m['train_loss']:.3f}", f"{m['val_loss']:.3f}", f"{m['val_bleu']:.2f}"]
            for m in metrics]
    beam = test.get("bleu_beam4", float("nan"))
    done = next(line for line in res.stdout.splitlines() if line.startswith("done in "))
    train_min = float(done.split()[2])  # "done in X min: ..." (training and its evaluations)
    print("## Translation recipe: default `pia translate train` (bundled Tatoeba corpus)\n")
    print(f"`pia translate train {' '.join(flags[3:])}`{' (QUICK)' if args.quick else ''}: training took {train_min:.1f} "
          f"min; the whole command took "
          f"{wall / 60:.1f} wall minutes and {cpu_min:.1f} CPU minutes, its final test report included; "
          f"{cpu_info()}.\n")
    print(markdown_table(["epoch", "step", "train loss", "val loss", "val BLEU (greedy)"], rows))
    print()
    print(markdown_table(["test split", "BLEU", "chrF"], [
        [f"model, greedy ({test['sentences']} pairs)", f"{test['bleu_greedy']:.2f}", f"{test['chrf_greedy']:.1f}"],
        ["model, beam 4", f"{beam:.2f}", f"{test.get('chrf_beam4', float('nan')):.1f}"],
        ["word-by-word dictionary baseline", f"{test['bleu_baseline']:.2f}", f"{test['chrf_baseline']:.1f}"]]))
    met = beam >= 25 and train_min <= 10
    print(f"\nGoal: test BLEU ≥ 25 (beam 4) after at most 10 minutes of training: **{'met' if met else 'not met'}** "
          f"(BLEU {beam:.2f} after {train_min:.1f} min of training).")


if __name__ == "__main__":
    main()
