"""Run every script in benchmarks/ and rewrite docs/benchmarks.md from their Markdown sections.

`python tools/run_benchmarks.py [--quick] [names...]`: each benchmark prints one Markdown section; this
script adds the machine, date and torch version, and keeps sections of benchmarks it did not run.

The result experiments (`EXPERIMENTS`: a recipe trained for ten minutes or more, a search over candidates) are
not run here. Each runs for tens of minutes to hours with flags chosen per search, and its section in
docs/benchmarks.md is written from several runs with what they show; a rerun here would replace that with one
run. Run them directly (`python benchmarks/bench_<name>.py --help`) and fold the result into their section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
MARK = "<!-- benchmark: {} -->"
EXPERIMENTS = ("text_cls", "translate_recipe", "translate_search")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    from pytorch_in_action.train.precision import cpu_bf16_flags, cpu_bf16_is_fast

    units = " and ".join(cpu_bf16_flags())
    bf16 = (f"{units} (bf16 matrix products {'fast' if cpu_bf16_is_fast() else 'not faster than float32'})"
            if units else "no bf16 matrix units (bf16 matrix products are slow)")
    return f"{cpu}, {os.cpu_count()} cores, {bf16}, Python {platform.python_version()}, torch {torch.__version__}"


def existing_sections() -> dict[str, str]:
    if not DOC.exists():
        return {}
    parts = re.split(r"<!-- benchmark: (\S+) -->\n", DOC.read_text(encoding="utf-8"))
    return {parts[i]: parts[i + 1].rstrip() + "\n" for i in range(1, len(parts) - 1, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("names", nargs="*", help="benchmark names (bench_<name>.py); default: all")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    found = {s.stem.removeprefix("bench_"): s for s in sorted((ROOT / "benchmarks").glob("bench_*.py"))}
    speed = {name: s for name, s in found.items() if name not in EXPERIMENTS}
    for name in args.names:
        if name in EXPERIMENTS:
            ap.error(f"{name} is a result experiment with a hand-written section: run "
                     f"benchmarks/bench_{name}.py directly and fold its result into docs/benchmarks.md")
        if name not in speed:
            ap.error(f"no benchmark {name!r}; there are: {', '.join(speed)}")
    scripts = {name: s for name, s in speed.items() if not args.names or name in args.names}
    sections = existing_sections()
    stamp = datetime.date.today().isoformat()
    failed = []
    for name, script in scripts.items():
        print(f"running {script.name} ...", flush=True)
        res = subprocess.run([sys.executable, str(script), *(["--quick"] if args.quick else [])],
                             capture_output=True, text=True, cwd=ROOT)
        if res.returncode != 0:
            failed.append(name)
            print(res.stderr[-2000:], file=sys.stderr)
            continue
        body = res.stdout.strip()
        sections[name] = f"{body}\n\n_Measured {stamp} on {machine()}{' (quick mode)' if args.quick else ''}._\n"
    header = ("# Benchmarks\n\nEvery from-scratch piece against its reference, in the same process, interleaved "
              "(ours, reference, ours, ...), median of per-pair ratios. `make bench` regenerates the speed sections; "
              f"the result experiments ({', '.join(EXPERIMENTS)}) are run by hand and their "
              "sections written from those runs.\n\n")
    text = header + "\n".join(f"{MARK.format(k)}\n{v}" for k, v in sorted(sections.items()))
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
