"""Learning BPE merges from word counts, step for step like the `tokenizers` Rust trainer.

Both tokenizers here train with it: byte-level BPE directly, WordPiece with the continuing-subword
prefix `##` (its vocabulary is the BPE vocabulary, the merges are dropped).

Tie-breaking, found by experiment and by reading the trainer: the most frequent pair wins, equal
counts go to the pair with the smaller (left id, right id); ids are special tokens first, then the
alphabet in code-point order, then `##c` pieces, then merged tokens in order of creation. Counts are
updated lazily (a stale heap entry is re-queued with its current count) and the merged pair's own
count is never decremented; both quirks change which pair wins later, so they are kept.

Two choices in the Rust trainer follow hash-map order and change from run to run: which characters
`limit_alphabet` drops among equal counts, and the ids of the `##c` pieces. Here they are
deterministic (ties drop the smaller code point; pieces in order of first appearance), or copied
from a `reference_vocab` to reproduce one particular Rust run exactly.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Pair = tuple[int, int]


@dataclass
class BpeTrainResult:
    vocab: list[str]  # id -> token
    merges: list[tuple[str, str]]  # in rank order


def _alphabet(word_counts: dict[str, int], initial_alphabet: Iterable[str], limit_alphabet: int | None,
              kept: set[str] | None) -> list[str]:
    counts: Counter[str] = Counter()
    for word, n in word_counts.items():
        for c in word:
            counts[c] += n
    for c in initial_alphabet:
        counts[c] = 1 << 62  # always kept unless the limit is below the initial alphabet's size
    chars = list(counts)
    if kept is not None:
        chars = [c for c in chars if c in kept]
    elif limit_alphabet is not None and len(chars) > limit_alphabet:
        chars.sort(key=lambda c: (counts[c], ord(c)))
        chars = chars[len(chars) - limit_alphabet:]
    return sorted(chars, key=ord)


def _merge_word(word: list[int], c1: int, c2: int, new: int) -> list[tuple[Pair, int]]:
    """Merge every (c1, c2) left to right in place; return the pair-count changes (merged pair excluded)."""
    changes: list[tuple[Pair, int]] = []
    i = 0
    while i < len(word):
        if word[i] == c1 and i + 1 < len(word) and word[i + 1] == c2:
            if i > 0:
                changes.append(((word[i - 1], c1), -1))
                changes.append(((word[i - 1], new), 1))
            word[i:i + 2] = [new]
            if i < len(word) - 1:
                changes.append(((c2, word[i + 1]), -1))
                changes.append(((new, word[i + 1]), 1))
        i += 1
    return changes


def train_bpe(word_counts: dict[str, int], vocab_size: int, min_frequency: int = 0,
              special_tokens: Sequence[str] = (), limit_alphabet: int | None = None,
              initial_alphabet: Iterable[str] = (), continuing_subword_prefix: str | None = None,
              reference_vocab: dict[str, int] | None = None) -> BpeTrainResult:
    """Learn a vocabulary and ranked merges from `{word: count}` (words already pre-tokenized)."""
    id2w: list[str] = []
    w2id: dict[str, int] = {}

    def add(token: str) -> int:
        if token not in w2id:
            w2id[token] = len(id2w)
            id2w.append(token)
        return w2id[token]

    for tok in special_tokens:
        add(tok)
    kept = None
    if reference_vocab is not None:  # which characters survived limit_alphabet in the reference run
        kept = {t for t in reference_vocab if len(t) == 1 and t not in special_tokens}
    for c in _alphabet(word_counts, initial_alphabet, limit_alphabet, kept):
        add(c)
    prefix = continuing_subword_prefix
    if prefix and reference_vocab is not None:  # the reference run's (hash-map) order of `##c` pieces
        pieces = [t for t in reference_vocab if t.startswith(prefix) and len(t) == len(prefix) + 1]
        for t in sorted(pieces, key=reference_vocab.__getitem__):
            if t[len(prefix):] in w2id:
                add(t)

    words: list[list[int]] = []
    counts: list[int] = []
    for word, n in word_counts.items():
        ids = []
        for i, c in enumerate(word):
            if c in w2id:  # characters dropped by limit_alphabet simply vanish from the word
                ids.append(add(prefix + c if prefix and i > 0 else c))
        words.append(ids)
        counts.append(n)

    pair_counts: dict[Pair, int] = defaultdict(int)
    where: dict[Pair, set[int]] = defaultdict(set)
    for wi, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += counts[wi]
            where[pair].add(wi)
    # max-heap on count, then ascending pair; `seq` keeps equal entries in insertion order
    heap = [(-pair_counts[p], p, seq, pos) for seq, (p, pos) in enumerate(where.items()) if pair_counts[p] > 0]
    heapq.heapify(heap)
    seq = len(heap)
    merges: list[tuple[Pair, int]] = []
    while len(w2id) < vocab_size and heap:
        neg, pair, _, pos = heapq.heappop(heap)
        if -neg != pair_counts[pair]:  # stale entry: re-queue with the current count
            seq += 1
            heapq.heappush(heap, (-pair_counts[pair], pair, seq, pos))
            continue
        if -neg < 1 or min_frequency > -neg:
            break
        a, b = id2w[pair[0]], id2w[pair[1]]
        if prefix and b.startswith(prefix):
            b = b[len(prefix):]
        new = add(a + b)
        merges.append((pair, new))
        fresh: dict[Pair, set[int]] = defaultdict(set)
        for wi in sorted(pos):
            for p, change in _merge_word(words[wi], pair[0], pair[1], new):
                pair_counts[p] += change * counts[wi]
                if change > 0:
                    fresh[p].add(wi)
        for p, wpos in fresh.items():
            if pair_counts[p] > 0:
                seq += 1
                heapq.heappush(heap, (-pair_counts[p], p, seq, wpos))

    # a pair merged twice keeps its last rank (the Rust model stores merges in a map)
    last = {pair: r for r, (pair, _) in enumerate(merges)}
    ranked = sorted(last, key=last.__getitem__)
    return BpeTrainResult(id2w, [(id2w[a], id2w[b]) for a, b in ranked])
