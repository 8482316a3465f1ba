"""CLIP's tokenizer on texts strangers wrote (curate_clip.tokens): the ids of open_clip's own
tokenizer, in bounded time and memory, and no exception on text it raised on."""

from __future__ import annotations

import random
import string

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from open_clip.tokenizer import SimpleTokenizer

from curate_clip.tokens import CACHE_WORDS, CACHED_WORD_CHARS, MAX_TEXT_CHARS, BoundedTokenizer, merge
from tests.bounded import finishes


@pytest.fixture(scope="module")
def tokenizers() -> tuple[SimpleTokenizer, BoundedTokenizer]:
    return SimpleTokenizer(), BoundedTokenizer(SimpleTokenizer())


PIECES = st.sampled_from([
    "a", "red", "Circle", "IMG_0012.JPG", " ", "  ", "\t", "\n", ".", ",", "!?", "'s", "'LL", "-", "_", "0", "42",
    "&amp;", "&lt;b&gt;", "&#39;", "&#x27;", "&", "é", "e\u0301", "日本", "ß", "İ", "\u200b", "\x00", "\ufffd",
    "\u202e", "Ã©", "<start_of_text>", "<END_OF_TEXT>", "😀", "zorblax", "aaaaaaaaaaaa",
])
TEXTS = st.lists(PIECES, max_size=120).map("".join)


@given(st.lists(TEXTS, min_size=1, max_size=4), st.sampled_from([None, 5, 77]))
@example(["word " * 100], None)  # past the context: cut as open_clip cuts
@example(["".join(random.Random(0).choice(string.ascii_lowercase) for _ in range(1500))], None)  # one long word
def test_the_ids_are_open_clips(tokenizers, texts, context_length):
    simple, bounded = tokenizers
    assert torch.equal(bounded(texts, context_length), simple(texts, context_length) if context_length else simple(texts))


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz.!", min_size=1, max_size=300))
def test_merging_is_open_clips_byte_pair_encoding(tokenizers, word):
    simple, bounded = tokenizers
    symbols = "".join(simple.byte_encoder[b] for b in word.encode())
    assert merge(symbols, simple.bpe_ranks, bounded.pairs) == simple.bpe(symbols).split(" ")


def test_a_text_is_read_up_to_its_bound(tokenizers):
    _, bounded = tokenizers
    text = " " * (MAX_TEXT_CHARS - 3) + "red circle"
    assert torch.equal(bounded([text]), bounded([" red"]))


def test_a_decimal_reference_too_long_for_int_is_a_replacement_character(tokenizers):
    simple, bounded = tokenizers
    for text in ["&#" + "9" * 5000 + "; red", "&amp;#" + "1" * 6000 + " red"]:
        with pytest.raises(ValueError, match="4300"):
            simple([text])
        assert torch.equal(bounded([text]), simple(["\ufffd"]))  # the red is past the bound


def test_the_word_cache_is_bounded(tokenizers):
    _, bounded = tokenizers
    bounded.cache.clear()
    words = [f"w{i:x}q" for i in range(CACHE_WORDS + 10)]
    for start in range(0, len(words), 4096):
        bounded([" ".join(words[start:start + 4096])[:MAX_TEXT_CHARS]])
    bounded(["x" * (CACHED_WORD_CHARS + 1)])
    assert 0 < len(bounded.cache) <= CACHE_WORDS
    assert all(len(word) <= CACHED_WORD_CHARS for word in bounded.cache)


def test_huge_hostile_texts_tokenize_in_bounded_time():
    """Each took minutes to hours with open_clip's tokenizer: a word of 10^5 random letters (a
    rescan per merge), 3 x 10^5 combining marks (ftfy's Unicode normalization), a million words."""
    finishes("""
        import random, string
        from curate_clip.models import tokenizer
        tokenizer = tokenizer("local-dir:folder", {})  # the tokenizer clip_score loads, as the config says
        word = "".join(random.Random(0).choice(string.ascii_lowercase) for _ in range(100_000))
        ids = tokenizer([word, "a" + "\\u0301\\u0316" * 150_000, "a red circle " * 1_000_000])
        assert ids.shape == (3, 77) and (ids[:, -1] == 49407).all()  # cut: the end of text last
    """)


@given(st.lists(TEXTS, min_size=1, max_size=4), st.sampled_from([5, 12, 77]))
@example(["word " * 10], 12)  # 10 tokens: start, 10, end fill 12 exactly, not cut
@example(["word " * 11], 12)  # 11: cut
@example([" " * MAX_TEXT_CHARS + "red"], 77)  # past the character bound: cut, though few tokens
def test_a_text_is_cut_where_open_clip_keeps_fewer_tokens_than_it_has(tokenizers, texts, context_length):
    simple, bounded = tokenizers
    ids, cut = bounded.tokenize(texts, context_length)
    assert torch.equal(ids, bounded(texts, context_length))
    assert cut == [len(text) > MAX_TEXT_CHARS or len(simple.encode(text)) > context_length - 2
                   for text in texts]


def test_another_tokenizer_cuts_the_texts_that_fill_its_context():
    class Padded:  # a Hugging Face-style tokenizer: right-padded with pad_token_id, cut at the context
        context_length = 4
        tokenizer = type("Inner", (), {"pad_token_id": 1})()

        def __call__(self, texts: list[str], context_length: int | None = None) -> torch.Tensor:
            rows = [[7] * min(len(text.split()), self.context_length) for text in texts]
            return torch.tensor([row + [1] * (self.context_length - len(row)) for row in rows])

    bounded = BoundedTokenizer(Padded())
    ids, cut = bounded.tokenize(["a b", "a b c d", "a b c d e", "", "x" * (MAX_TEXT_CHARS + 1)])
    assert ids.shape == (5, 4) and cut == [False, True, True, False, True]
