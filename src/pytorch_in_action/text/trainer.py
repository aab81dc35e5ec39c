"""Learning BPE merges from word counts, step for step like the `tokenizers` Rust trainer.

Both tokenizers here train with it: byte-level BPE directly, WordPiece with the continuing-subword
prefix `##` (its vocabulary is the BPE vocabulary, the merges are dropped).

Tie-breaking, found by experiment and by reading the trainer: the most frequent pair wins, equal
counts go to the pair with the smaller (left id, right id); ids are special tokens first, then the
alphabet in code-point order, then `##c` pieces, then merged tokens in order of creation. Counts are
updated lazily (a stale heap entry is re-queued with its current count) and the merged pair's own
count is never decremented; both quirks change which pair wins later, so they are kept. Training stops
at `vocab_size` tokens, or as soon as the best pair is seen fewer than `min_frequency` times.

Two choices in the Rust trainer follow hash-map order, which changes from run to run: which characters
`limit_alphabet` drops among equal counts, and the ids of the `##c` pieces (so a tie between two pairs
that differ only in `##c` pieces can go either way, and every later merge can differ). Here both are
deterministic: ties drop the smaller code point, and `##c` pieces are numbered in code-point order. The
result records where those choices mattered (`tied_alphabet`, `hash_tie_at`): before that point every
Rust run learns exactly what this trainer learns.
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
    # characters in the tie that `limit_alphabet` cut through (Rust keeps an arbitrary subset of them)
    tied_alphabet: frozenset[str] = frozenset()
    # vocabulary size when a winning pair first tied with a pair that Rust may order first (it compares
    # `##c` ids, which follow hash order), or the alphabet's end when `tied_alphabet` is not empty; None if
    # neither happened: then the whole run is determined
    hash_tie_at: int | None = None


def _alphabet(word_counts: dict[str, int], initial_alphabet: Iterable[str],
              limit_alphabet: int | None) -> tuple[list[str], frozenset[str]]:
    """The kept characters in code-point order, and the tie group the limit cut through (if any)."""
    counts: Counter[str] = Counter()
    for word, n in word_counts.items():
        for c in word:
            counts[c] += n
    for c in initial_alphabet:
        counts[c] = 1 << 62  # always kept unless the limit is below the initial alphabet's size
    chars = list(counts)
    tied: frozenset[str] = frozenset()
    if limit_alphabet is not None and len(chars) > limit_alphabet:
        chars.sort(key=lambda c: (counts[c], ord(c)))
        cut = len(chars) - limit_alphabet  # chars[:cut] are dropped
        if cut < len(chars) and counts[chars[cut - 1]] == counts[chars[cut]]:
            tied = frozenset(c for c in chars if counts[c] == counts[chars[cut]])
        chars = chars[cut:]
    return sorted(chars, key=ord), tied


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


class _ForcedOrder:
    """Which `##c` id orders every Rust run shares. Rust numbers `##c` pieces in order of first appearance
    while it walks the words in hash order, so piece x always precedes piece y only when every word holding
    y holds x before it; any other order can go either way."""

    def __init__(self, word_counts: dict[str, int], prefix: str | None, id2w: list[str], first: int, end: int):
        self.first, self.end, self.n = first, end, len(prefix or "")
        self.id2w, self.word_counts = id2w, word_counts
        self.holders: dict[str, list[str]] | None = None  # c -> words holding "##c", built on first use
        self.cache: dict[Pair, bool] = {}

    def before(self, x: int, y: int) -> bool:
        """Whether piece x precedes piece y in every Rust run."""
        if self.holders is None:
            self.holders = defaultdict(list)
            for word in self.word_counts:
                for c in set(word[1:]):
                    self.holders[c].append(word)
        if (x, y) not in self.cache:
            cx, cy = self.id2w[x][self.n:], self.id2w[y][self.n:]
            self.cache[(x, y)] = all(cx in w[1:w.index(cy, 1)] for w in self.holders[cy])
        return self.cache[(x, y)]

    def hash_ordered(self, p: Pair, q: Pair) -> bool:
        """Whether Rust's order of two pairs can differ between runs: they first differ at two `##c` pieces
        whose relative order is not forced by the data."""
        a, b = (p[0], q[0]) if p[0] != q[0] else (p[1], q[1])
        if not (self.first <= a < self.end and self.first <= b < self.end):
            return False
        return not (self.before(a, b) or self.before(b, a))


def _tied_with(heap: list, neg: int, winner: Pair, pair_counts: dict[Pair, int], hash_ordered) -> bool:
    """Whether another live pair has the winner's count and a hash-dependent order against it. Entries with
    the top key form a subtree at the heap's root, so only those nodes are visited."""
    stack = [0] if heap else []
    while stack:
        i = stack.pop()
        if heap[i][0] != neg:
            continue
        p = heap[i][1]
        if p != winner and pair_counts[p] == -neg and hash_ordered(winner, p):
            return True
        stack.extend(j for j in (2 * i + 1, 2 * i + 2) if j < len(heap))
    return False


def train_bpe(word_counts: dict[str, int], vocab_size: int, min_frequency: int = 0,
              special_tokens: Sequence[str] = (), limit_alphabet: int | None = None,
              initial_alphabet: Iterable[str] = (), continuing_subword_prefix: str | None = None
              ) -> BpeTrainResult:
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
    alphabet, tied_alphabet = _alphabet(word_counts, initial_alphabet, limit_alphabet)
    for c in alphabet:
        add(c)
    # which tied characters Rust keeps is arbitrary, and so are the pieces and pairs built on them
    hash_tie_at: int | None = len(id2w) if tied_alphabet else None
    prefix = continuing_subword_prefix
    first_piece = len(id2w)
    words: list[list[int]] = []
    counts: list[int] = []
    for word, n in word_counts.items():
        ids = []
        for i, c in enumerate(word):
            if c in w2id:  # characters dropped by limit_alphabet simply vanish from the word
                ids.append(add(prefix + c if prefix and i > 0 else c))
        words.append(ids)
        counts.append(n)
    end_piece = len(id2w)  # `##c` pieces got ids in order of first appearance, words in input order
    forced = _ForcedOrder(word_counts, prefix, id2w, first_piece, end_piece)

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
        if hash_tie_at is None and end_piece > first_piece and _tied_with(heap, neg, pair, pair_counts,
                                                                          forced.hash_ordered):
            hash_tie_at = len(id2w)
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
    return BpeTrainResult(id2w, [(id2w[a], id2w[b]) for a, b in ranked], tied_alphabet, hash_tie_at)
