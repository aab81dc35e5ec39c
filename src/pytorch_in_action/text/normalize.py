"""BERT's text normaliser (the `BertNormalizer` of `tokenizers`), with the alignment back to the input.

Four optional steps, in this order: drop control characters and turn every kind of whitespace into a
space; put spaces around each CJK ideograph, so every Chinese character becomes a word of its own;
strip accents (canonical decomposition, then drop the non-spacing marks); lowercase. Each input
character is rewritten on its own, so every output character knows which input character it came from
and a tokenizer can report offsets into the text the user gave.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from pytorch_in_action.text.pretokenize import WHITE_SPACE

# the CJK Unified Ideographs blocks and their extensions (Hangul, Hiragana and Katakana are not here:
# those scripts put spaces between words)
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_chinese_char(c: str) -> bool:
    return any(lo <= ord(c) <= hi for lo, hi in _CJK_RANGES)


def is_control(c: str) -> bool:
    """Unicode "Other" (Cc, Cf, Cn, Co, Cs), except tab, newline and carriage return (those are whitespace)."""
    return c not in "\t\n\r" and unicodedata.category(c).startswith("C")


@dataclass(frozen=True)
class BertNormalizer:
    """Same options and defaults as `tokenizers.normalizers.BertNormalizer`; `strip_accents=None` follows
    `lowercase` (an uncased BERT strips accents, a cased one keeps them)."""

    clean_text: bool = True
    handle_chinese_chars: bool = True
    strip_accents: bool | None = None
    lowercase: bool = True

    def _char(self, c: str) -> str:
        if self.clean_text:
            if c in ("\0", "\ufffd") or is_control(c):
                return ""
            if c in WHITE_SPACE:
                c = " "
        if self.handle_chinese_chars and is_chinese_char(c):
            c = f" {c} "
        if self.lowercase if self.strip_accents is None else self.strip_accents:
            c = "".join(d for d in unicodedata.normalize("NFD", c) if unicodedata.category(d) != "Mn")
        if self.lowercase:
            c = "".join(d.lower() for d in c)  # per character, as Rust's char::to_lowercase (no final-sigma rule)
        return c

    def normalize_with_alignment(self, text: str) -> tuple[str, list[int]]:
        """The normalised text and, for each of its characters, the index of the input character it came from."""
        out, source = [], []
        for i, c in enumerate(text):
            n = self._char(c)
            out.append(n)
            source.extend([i] * len(n))
        return "".join(out), source

    def normalize_str(self, text: str) -> str:
        return "".join(self._char(c) for c in text)
