"""WordPiece (BERT's subwords), trained and applied from scratch; equal to `tokenizers`' WordPiece model
trained by `WordPieceTrainer` with the `BertPreTokenizer` and the `WordPiece` decoder.

Training is BPE with a `##` prefix on every non-initial piece; encoding is greedy longest-match-first,
and a word with any unmatched part becomes a single unknown token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from pytorch_in_action.text.encoding import Encoding, pad_and_truncate, split_special
from pytorch_in_action.text.pretokenize import bert_split
from pytorch_in_action.text.trainer import train_bpe

# the `WordPiece` decoder's cleanup: glue punctuation and English contractions back on
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


class WordPieceTokenizer:
    """WordPiece: `train` learns a vocabulary, `encode` splits each word greedily into the longest pieces."""

    def __init__(self, unk_token: str = "[UNK]", continuing_subword_prefix: str = "##",
                 max_input_chars_per_word: int = 100) -> None:
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        self.vocab: dict[str, int] = {}
        self.id_to_token: list[str] = []
        self.special_tokens: list[str] = []

    def train(self, texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
              special_tokens: Sequence[str] = (), limit_alphabet: int | None = None,
              initial_alphabet: Iterable[str] = (), reference_vocab: dict[str, int] | None = None
              ) -> WordPieceTokenizer:
        """Learn a vocabulary of `vocab_size` tokens. `reference_vocab` (a Rust run's vocabulary) only settles
        the two choices the Rust trainer leaves to hash-map order (see `trainer.py`)."""
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(w for w, _ in bert_split(text))
        result = train_bpe(dict(counts), vocab_size, min_frequency, special_tokens, limit_alphabet,
                           initial_alphabet, self.prefix, reference_vocab)
        self.id_to_token = result.vocab
        self.vocab = {t: i for i, t in enumerate(result.vocab)}
        self.special_tokens = list(special_tokens)
        return self

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def _word(self, word: str, start: int) -> list[tuple[int, tuple[int, int]]]:
        """Greedy longest-match-first pieces of one word, or one unknown token for the whole word."""
        unk = [(self.vocab[self.unk_token], (start, start + len(word)))]
        if len(word) > self.max_input_chars_per_word:
            return unk
        pieces, i = [], 0
        while i < len(word):
            for j in range(len(word), i, -1):
                sub = word[i:j] if i == 0 else self.prefix + word[i:j]
                if sub in self.vocab:
                    pieces.append((self.vocab[sub], (start + i, start + j)))
                    i = j
                    break
            else:
                return unk
        return pieces

    def encode_with_offsets(self, text: str) -> Encoding:
        ids, offsets = [], []
        for piece, start, special in split_special(text, self.special_tokens):
            if special:
                ids.append(self.vocab[piece])
                offsets.append((start, start + len(piece)))
                continue
            for word, (s, _) in bert_split(piece):
                for tid, off in self._word(word, start + s):
                    ids.append(tid)
                    offsets.append(off)
        return Encoding(ids, [self.id_to_token[i] for i in ids], offsets)

    def encode(self, text: str) -> list[int]:
        return self.encode_with_offsets(text).ids

    def encode_batch(self, texts: Sequence[str], **pad_kwargs) -> list[Encoding]:
        return pad_and_truncate([self.encode_with_offsets(t) for t in texts], **pad_kwargs)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False, cleanup: bool = True) -> str:
        """Join pieces: `##x` glues onto the previous piece, anything else starts a new word."""
        toks = [self.id_to_token[i] for i in ids]
        if skip_special_tokens:
            toks = [t for t in toks if t not in self.special_tokens]
        out = []
        for k, t in enumerate(toks):
            if k and t.startswith(self.prefix):
                t = t[len(self.prefix):]
            elif k:
                t = " " + t
            if cleanup:  # per piece, as the `WordPiece` decoder does
                for a, b in _CLEANUP:
                    t = t.replace(a, b)
            out.append(t)
        return "".join(out)
