"""Pre-tokenizers: cut text into words (with character offsets) before a subword model sees it.

`byte_level_split` is GPT-2's regex plus its byte-to-unicode map (the `ByteLevel` pre-tokenizer);
`bert_split` cuts on whitespace and isolates punctuation (the `BertPreTokenizer`).
"""

from __future__ import annotations

import string
import unicodedata
from functools import lru_cache

import regex

# GPT-2's split: contractions, letters, numbers, other symbols, whitespace (a trailing space stays
# in front of the next word, which is why tokens look like "Ġword").
GPT2_PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

# The Unicode White_Space property (what Rust's `char::is_whitespace` tests; Python's isspace differs).
WHITE_SPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters (space -> 'Ġ')."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, shift = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:  # control characters and spaces are moved above 255 so every byte prints
            table[b] = chr(256 + shift)
            shift += 1
    return table


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


def byte_level_alphabet() -> list[str]:
    """The 256 characters a byte-level vocabulary starts from."""
    return sorted(bytes_to_unicode().values())


def byte_level_split(text: str, add_prefix_space: bool = False) -> list[tuple[str, list[int]]]:
    """Split `text` into byte-level words; each comes with, per byte, the index of the character it came from."""
    table = bytes_to_unicode()
    words = []
    prefix = add_prefix_space and bool(text) and not text.startswith(" ")
    src = " " + text if prefix else text
    for m in GPT2_PATTERN.finditer(src):
        chars, owner = [], []
        for i in range(m.start(), m.end()):
            # the added space belongs to the first real character, as in `tokenizers`
            pos = max(i - 1, 0) if prefix else i
            for b in src[i].encode("utf-8"):
                chars.append(table[b])
                owner.append(pos)
        words.append(("".join(chars), owner))
    return words


def is_bert_punctuation(c: str) -> bool:
    """ASCII punctuation (which includes symbols like `$` and `+`) or any Unicode P* category."""
    return c in string.punctuation or unicodedata.category(c).startswith("P")


def bert_split(text: str) -> list[tuple[str, tuple[int, int]]]:
    """Words and their (start, end) character offsets: cut on whitespace, each punctuation mark alone."""
    words, start = [], None
    for i, c in enumerate(text):
        if c in WHITE_SPACE or is_bert_punctuation(c):
            if start is not None:
                words.append((text[start:i], (start, i)))
                start = None
            if c not in WHITE_SPACE:
                words.append((c, (i, i + 1)))
        elif start is None:
            start = i
    if start is not None:
        words.append((text[start:], (start, len(text))))
    return words
