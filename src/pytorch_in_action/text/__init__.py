"""Tokenizers written from scratch (byte-level BPE, WordPiece), equal to the `tokenizers` library."""
