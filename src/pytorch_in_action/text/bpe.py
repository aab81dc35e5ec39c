"""Byte-level BPE (GPT-2 style), trained and applied from scratch; equal to `tokenizers`' BPE model with
the `ByteLevel` pre-tokenizer and decoder.

Every text is first turned into bytes, each byte shown as a printable character, so any Unicode
string round-trips exactly and nothing is ever unknown.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Sequence

from pytorch_in_action.text.encoding import Encoding, pad_and_truncate, split_special
from pytorch_in_action.text.pretokenize import byte_level_alphabet, byte_level_split, unicode_to_bytes
from pytorch_in_action.text.trainer import train_bpe


class ByteLevelBPETokenizer:
    """Byte-level BPE: `train` learns merges, `encode` applies them by rank, `decode` maps bytes back."""

    def __init__(self, add_prefix_space: bool = False) -> None:
        self.add_prefix_space = add_prefix_space
        self.vocab: dict[str, int] = {}
        self.id_to_token: list[str] = []
        self.merges: list[tuple[str, str]] = []
        self.special_tokens: list[str] = []
        self._ranks: dict[tuple[int, int], tuple[int, int]] = {}
        self._cache: dict[str, list[int]] = {}

    def pre_tokenize(self, text: str) -> list[str]:
        return [w for w, _ in byte_level_split(text, self.add_prefix_space)]

    def train(self, texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
              special_tokens: Sequence[str] = (), limit_alphabet: int | None = None,
              initial_alphabet: Iterable[str] | None = None) -> ByteLevelBPETokenizer:
        """Learn merges until the vocabulary has `vocab_size` tokens; starts from all 256 bytes by default."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(self.pre_tokenize(text))
        alphabet = byte_level_alphabet() if initial_alphabet is None else initial_alphabet
        result = train_bpe(dict(counts), vocab_size, min_frequency, special_tokens, limit_alphabet, alphabet)
        self._set_model(result.vocab, result.merges, special_tokens)
        return self

    def _set_model(self, vocab: list[str], merges: list[tuple[str, str]], special_tokens: Sequence[str]) -> None:
        self.id_to_token = list(vocab)
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.merges = list(merges)
        self.special_tokens = list(special_tokens)
        self._ranks = {(self.vocab[a], self.vocab[b]): (r, self.vocab[a + b]) for r, (a, b) in enumerate(merges)}
        self._cache = {}

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def _bpe(self, word: str) -> list[int]:
        """Apply merges lowest rank first (leftmost on ties), as the Rust model's heap does."""
        if word in self._cache:
            return self._cache[word]
        sym = [self.vocab[c] for c in word if c in self.vocab]
        nxt = list(range(1, len(sym))) + [-1]
        prv = list(range(-1, len(sym) - 1))
        alive = [True] * len(sym)
        heap = [(*self._ranks[p], i) for i, p in enumerate(zip(sym, sym[1:])) if p in self._ranks]
        heap = [(r, i, new) for r, new, i in heap]
        heapq.heapify(heap)
        while heap:
            rank, i, new = heapq.heappop(heap)
            j = nxt[i]
            if not alive[i] or j == -1 or self._ranks.get((sym[i], sym[j]), (None, None))[1] != new:
                continue  # expired entry: one side was merged away since it was queued
            sym[i], alive[j], nxt[i] = new, False, nxt[j]
            if nxt[j] != -1:
                prv[nxt[j]] = i
            for a, b in ((prv[i], i), (i, nxt[i])):
                if a != -1 and b != -1 and (sym[a], sym[b]) in self._ranks:
                    r, n = self._ranks[(sym[a], sym[b])]
                    heapq.heappush(heap, (r, a, n))
        ids = [s for s, ok in zip(sym, alive) if ok]
        self._cache[word] = ids
        return ids

    def encode_with_offsets(self, text: str) -> Encoding:
        """Ids, tokens and character offsets (a byte inside a multi-byte character maps to that character)."""
        ids, offsets = [], []
        for piece, start, special in split_special(text, self.special_tokens):
            if special:
                ids.append(self.vocab[piece])
                offsets.append((start, start + len(piece)))
                continue
            for word, owner in byte_level_split(piece, self.add_prefix_space):
                b = 0
                for tid in self._bpe(word):
                    n = len(self.id_to_token[tid])
                    ids.append(tid)
                    offsets.append((start + owner[b], start + owner[b + n - 1] + 1))
                    b += n
        return Encoding(ids, [self.id_to_token[i] for i in ids], offsets)

    def encode(self, text: str) -> list[int]:
        return self.encode_with_offsets(text).ids

    def encode_batch(self, texts: Sequence[str], **pad_kwargs) -> list[Encoding]:
        """Encode several texts, then truncate/pad them (see `pad_and_truncate` for the options)."""
        return pad_and_truncate([self.encode_with_offsets(t) for t in texts], **pad_kwargs)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Concatenate the tokens' bytes and decode UTF-8 (invalid sequences become U+FFFD)."""
        table = unicode_to_bytes()
        out, buf = [], bytearray()
        for i in ids:
            tok = self.id_to_token[i]
            if tok in self.special_tokens:
                out.append(buf.decode("utf-8", errors="replace"))
                buf = bytearray()
                if not skip_special_tokens:
                    out.append(tok)
            else:
                buf.extend(table[c] for c in tok)
        out.append(buf.decode("utf-8", errors="replace"))
        return "".join(out)
