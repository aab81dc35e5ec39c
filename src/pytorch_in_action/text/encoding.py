"""What both tokenizers share: the `Encoding` record, splitting out special tokens, padding and truncation."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Encoding:
    """One encoded text: ids, their token strings and (start, end) character offsets into the text."""

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    attention_mask: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.attention_mask:
            self.attention_mask = [1] * len(self.ids)


def split_special(text: str, special_tokens: Sequence[str]) -> list[tuple[str, int, bool]]:
    """Cut `text` around exact occurrences of special tokens (longest first): (piece, start, is_special)."""
    if not special_tokens:
        return [(text, 0, False)] if text else []
    pattern = re.compile("|".join(re.escape(t) for t in sorted(special_tokens, key=len, reverse=True)))
    pieces, pos = [], 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            pieces.append((text[pos:m.start()], pos, False))
        pieces.append((m.group(), m.start(), True))
        pos = m.end()
    if pos < len(text):
        pieces.append((text[pos:], pos, False))
    return pieces


def pad_and_truncate(encodings: list[Encoding], *, max_length: int | None = None, truncation: bool = False,
                     padding: str | bool = False, pad_id: int = 0, pad_token: str = "[PAD]",
                     padding_side: str = "right") -> list[Encoding]:
    """Cut each encoding to `max_length` (from the right), then pad to the longest or to `max_length`."""
    if truncation and max_length is not None:
        encodings = [Encoding(e.ids[:max_length], e.tokens[:max_length], e.offsets[:max_length],
                              e.attention_mask[:max_length]) for e in encodings]
    if not padding:
        return encodings
    if padding == "max_length":
        if max_length is None:
            raise ValueError("padding='max_length' needs max_length")
        target = max_length
    else:
        target = max((len(e.ids) for e in encodings), default=0)
    out = []
    for e in encodings:
        n = target - len(e.ids)
        if n <= 0:
            out.append(e)
            continue
        ids, toks, offs, mask = [pad_id] * n, [pad_token] * n, [(0, 0)] * n, [0] * n
        if padding_side == "left":
            out.append(Encoding(ids + e.ids, toks + e.tokens, offs + e.offsets, mask + e.attention_mask))
        else:
            out.append(Encoding(e.ids + ids, e.tokens + toks, e.offsets + offs, e.attention_mask + mask))
    return out
