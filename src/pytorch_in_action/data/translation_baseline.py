"""A trivial translation baseline: word-by-word dictionary translation learned from the training pairs.

For each English word (lower-cased), the Chinese character n-gram most associated with it across the training
pairs, by the Dice coefficient of their sentence-level co-occurrence: 2 c(w, g) / (c(w) + c(g)). A sentence is
translated by replacing each word with its n-gram, in English word order (words with no confident entry are
dropped; punctuation maps to its Chinese form). No model, no reordering, no context: the score a learned
translator must clearly beat.
"""

from __future__ import annotations

import re
from collections import Counter

from pytorch_in_action.data.translation import Pair, clean_text

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\w\s]")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
PUNCTUATION = {".": "。", "?": "?", "!": "!", ",": ","}  # as `clean_text` (NFKC) writes the Chinese side


def english_words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks of an English sentence."""
    return _WORD.findall(clean_text(text).lower())


def chinese_ngrams(text: str, max_n: int) -> set[str]:
    """The distinct runs of 1..max_n Chinese characters inside each stretch of Chinese characters."""
    grams = set()
    for run in _CJK_RUN.findall(text):
        for n in range(1, max_n + 1):
            grams.update(run[i : i + n] for i in range(len(run) - n + 1))
    return grams


class WordByWordTranslator:
    """Dictionary English word -> Chinese n-gram, fitted on sentence pairs (see the module docstring)."""

    def __init__(self, max_n: int = 3, min_count: int = 2, min_dice: float = 0.1):
        self.max_n, self.min_count, self.min_dice = max_n, min_count, min_dice
        self.table: dict[str, str] = {}

    def fit(self, pairs: list[Pair]) -> WordByWordTranslator:
        word_count: Counter[str] = Counter()
        gram_count: Counter[str] = Counter()
        joint: Counter[tuple[str, str]] = Counter()
        for en, zh in pairs:
            words = {w for w in english_words(en) if w not in PUNCTUATION}
            grams = chinese_ngrams(zh, self.max_n)
            word_count.update(words)
            gram_count.update(grams)
            joint.update((w, g) for w in words for g in grams)
        best: dict[str, tuple[float, str]] = {}
        for (w, g), c in joint.items():
            if c < self.min_count:
                continue
            dice = 2 * c / (word_count[w] + gram_count[g])
            # ties go to the longer n-gram (a whole word rather than one of its characters), then the first seen
            if dice >= self.min_dice and (dice, len(g)) > (best.get(w, (0.0, ""))[0], len(best.get(w, (0.0, ""))[1])):
                best[w] = (dice, g)
        self.table = {w: g for w, (_, g) in best.items()}
        return self

    def translate(self, text: str) -> str:
        return "".join(PUNCTUATION.get(w) or self.table.get(w, "") for w in english_words(text))

    def translate_all(self, texts: list[str]) -> list[str]:
        return [self.translate(t) for t in texts]
