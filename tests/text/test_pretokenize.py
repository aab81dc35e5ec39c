"""The pre-tokenizers split exactly like `tokenizers`' ByteLevel and BertPreTokenizer, on random text."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import pre_tokenizers

from pytorch_in_action.text.pretokenize import bert_split, byte_level_alphabet, byte_level_split

# The Rust regex engine's Unicode tables are older than Python's `regex` module, so recently assigned
# characters (e.g. U+1DF2B, Unicode 15) are letters to one and unassigned to the other. Draw characters
# that were already assigned in Unicode 3.2.
OLD = st.characters(codec="utf-8").filter(lambda c: unicodedata.ucd_3_2_0.category(c) != "Cn")
TEXT = st.text(alphabet=OLD, max_size=60)


def test_byte_alphabet_is_tokenizers_alphabet():
    assert byte_level_alphabet() == sorted(pre_tokenizers.ByteLevel.alphabet())


@settings(max_examples=300, deadline=None)
@given(TEXT, st.booleans())
def test_byte_level_split(text, add_prefix_space):
    ref = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space).pre_tokenize_str(text)
    assert [w for w, _ in byte_level_split(text, add_prefix_space)] == [w for w, _ in ref]


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_bert_split(text):
    assert bert_split(text) == pre_tokenizers.BertPreTokenizer().pre_tokenize_str(text)
