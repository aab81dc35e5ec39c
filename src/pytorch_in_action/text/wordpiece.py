"""WordPiece (BERT's subwords), trained and applied from scratch; equal to `tokenizers`' WordPiece model
trained by `WordPieceTrainer` with the `BertPreTokenizer`, the `WordPiece` decoder and, when given, the
`BertNormalizer`.

Training is BPE with a `##` prefix on every non-initial piece; encoding is greedy longest-match-first,
and a word with any unmatched part becomes a single unknown token. Without a normaliser, a Chinese
sentence with no spaces is one long word; BERT's normaliser makes each Chinese character a word.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from pytorch_in_action.text.encoding import Encoding, pad_and_truncate, split_special
from pytorch_in_action.text.normalize import BertNormalizer
from pytorch_in_action.text.pretokenize import bert_split
from pytorch_in_action.text.trainer import train_bpe

# the `WordPiece` decoder's cleanup: glue punctuation and English contractions back on
_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


class WordPieceTokenizer:
    """WordPiece: `train` learns a vocabulary, `encode` splits each word greedily into the longest pieces.

    `normalizer` (e.g. `BertNormalizer()`) rewrites text before it is cut into words, in training and in
    encoding; offsets still point into the text as given."""

    def __init__(self, unk_token: str = "[UNK]", continuing_subword_prefix: str = "##",
                 max_input_chars_per_word: int = 100, normalizer: BertNormalizer | None = None) -> None:
        self.normalizer = normalizer
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        self.vocab: dict[str, int] = {}
        self.id_to_token: list[str] = []
        self.special_tokens: list[str] = []
        self.tied_alphabet: frozenset[str] = frozenset()
        self.hash_tie_at: int | None = None

    def train(self, texts: Iterable[str], vocab_size: int, min_frequency: int = 2,
              special_tokens: Sequence[str] = (), limit_alphabet: int | None = None,
              initial_alphabet: Iterable[str] = ()) -> WordPieceTokenizer:
        """Learn a vocabulary of at most `vocab_size` tokens; merging stops early when the best pair is seen
        fewer than `min_frequency` times. Deterministic; `tied_alphabet` and `hash_tie_at` tell where the
        Rust trainer's result depends on its hash-map order (see `trainer.py`)."""
        counts: Counter[str] = Counter()
        for text in texts:
            if self.normalizer is not None:
                text = self.normalizer.normalize_str(text)
            counts.update(w for w, _ in bert_split(text))
        result = train_bpe(dict(counts), vocab_size, min_frequency, special_tokens, limit_alphabet,
                           initial_alphabet, self.prefix)
        self.tied_alphabet, self.hash_tie_at = result.tied_alphabet, result.hash_tie_at
        self.id_to_token = result.vocab
        self.vocab = {t: i for i, t in enumerate(result.vocab)}
        self.special_tokens = list(special_tokens)
        return self

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def _word(self, word: str) -> list[tuple[int, int, int]]:
        """Greedy longest-match-first pieces of one word as (id, start, end) in the word, or one unknown token
        for the whole word."""
        unk = [(self.vocab[self.unk_token], 0, len(word))]
        if len(word) > self.max_input_chars_per_word:
            return unk
        pieces, i = [], 0
        while i < len(word):
            for j in range(len(word), i, -1):
                sub = word[i:j] if i == 0 else self.prefix + word[i:j]
                if sub in self.vocab:
                    pieces.append((self.vocab[sub], i, j))
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
            if self.normalizer is None:
                norm, source = piece, range(len(piece))
            else:  # source[k]: the character of `piece` that normalised character k came from
                norm, source = self.normalizer.normalize_with_alignment(piece)
            for word, (s, _) in bert_split(norm):
                for tid, i, j in self._word(word):
                    ids.append(tid)
                    offsets.append((start + source[s + i], start + source[s + j - 1] + 1))
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
