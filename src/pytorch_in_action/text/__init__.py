"""Tokenizers written from scratch (byte-level BPE, WordPiece), equal to the `tokenizers` library."""

from pytorch_in_action.text.bpe import ByteLevelBPETokenizer
from pytorch_in_action.text.encoding import Encoding, pad_and_truncate
from pytorch_in_action.text.normalize import BertNormalizer
from pytorch_in_action.text.wordpiece import WordPieceTokenizer

__all__ = ["BertNormalizer", "ByteLevelBPETokenizer", "Encoding", "WordPieceTokenizer", "pad_and_truncate"]
