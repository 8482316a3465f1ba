"""CLIP's token ids of texts strangers wrote, in time that grows with the text no faster than
``n log n``, and the same ids as open_clip's tokenizer.

open_clip's ``SimpleTokenizer`` (OpenAI's BPE) cleans the whole text, splits all of it into words,
encodes every word and only then keeps the first ``context_length`` tokens. Its byte-pair merging
rescans a word once per merge, so one word of random letters took 3.6 s at 10 000 characters and
hours at a million; its cache keeps every word it ever saw; ``html.unescape`` in its cleaning
raises ValueError on a decimal character reference of more than 4300 digits; ftfy's Unicode
normalization is quadratic in a run of combining marks.

:class:`BoundedTokenizer` wraps it:

- a text is read up to :data:`MAX_TEXT_CHARS` characters. CLIP reads 77 tokens, a few hundred
  characters of any natural text; longer texts give the same ids unless their first tokens lie
  past that many characters (thousands of spaces first) or ftfy judges the first line's encoding
  on what follows. The bound also keeps a decimal reference under 4300 digits (then past
  U+10FFFF: U+FFFD, as html.unescape would make of a longer one);
- words are encoded only until the context is full, each with :func:`merge` (the same merges in
  the same order, kept in a heap), and at most :data:`CACHE_WORDS` of them are cached.

Other tokenizers (Hugging Face's, which are linear) get the length bound only.

:meth:`BoundedTokenizer.tokenize` also says which texts the model does not read whole (more tokens
than its context holds, or more than :data:`MAX_TEXT_CHARS` characters), from the same encoding:
nothing is tokenized twice. CLIP's BPE spends 2-3 tokens on a character of most non-Latin scripts
(14 Chinese characters: 37 tokens), so a 77-token context reads ~25-30 of them, a 32-token one ~10.
For a tokenizer other than open_clip's own the count is of texts that fill the whole context (cut
there, or exactly that long).
"""

from __future__ import annotations

import heapq
from typing import Any

MAX_TEXT_CHARS = 4096  # under Python's 4300-digit limit on int() of a string, which html.unescape meets
CACHE_WORDS = 1 << 16
CACHED_WORD_CHARS = 64  # longer words are merged again when they recur
END_OF_WORD = "</w>"


def merge(word: str, ranks: dict[tuple[str, str], int], pairs: list[tuple[str, str]]) -> list[str]:
    """open_clip's ``SimpleTokenizer.bpe(word)``, split at its spaces: the symbols of ``word`` (its
    last with ``</w>``) merged pair by pair, lowest rank first, every occurrence of that pair left
    to right before the next rank (a merge can make a pair of lower rank: it comes next).

    Symbols are a linked list and candidate pairs a heap of (rank, position): an entry whose
    symbols have changed since is skipped, so each merge costs ``log n``, not a rescan.
    ``pairs[rank]`` is the pair of that rank."""
    symbols: list[str | None] = [*word[:-1], word[-1] + END_OF_WORD]
    count = len(symbols)
    after = list(range(1, count + 1))  # count: the end
    before = list(range(-1, count - 1))
    heap: list[tuple[int, int]] = []

    def candidate(i: int) -> None:
        j = after[i]
        if i >= 0 and j < count:
            rank = ranks.get((symbols[i], symbols[j]))  # type: ignore[arg-type]
            if rank is not None:
                heapq.heappush(heap, (rank, i))

    for i in range(count - 1):
        candidate(i)

    while heap:
        rank = heap[0][0]
        first, second = pairs[rank]
        due = []
        while heap and heap[0][0] == rank:  # every occurrence now, left to right (none is made meanwhile)
            due.append(heapq.heappop(heap)[1])
        for i in due:
            j = after[i]
            if symbols[i] != first or j >= count or symbols[j] != second:
                continue  # merged since, into this pair's left or right symbol
            symbols[i], symbols[j] = first + second, None
            after[i] = after[j]
            if after[j] < count:
                before[after[j]] = i
            candidate(before[i])
            candidate(i)
    return [symbol for symbol in symbols if symbol is not None]


class BoundedTokenizer:
    """``tokenizer(texts, context_length=None)`` as open_clip's, bounded (see the module)."""

    def __init__(self, inner: Any):
        from open_clip.tokenizer import SimpleTokenizer

        self.inner = inner
        self.context_length = getattr(inner, "context_length", None)
        self.exact = type(inner) is SimpleTokenizer and inner.reduction_fn is None
        if self.exact:
            self.pairs = [pair for pair, _ in sorted(inner.bpe_ranks.items(), key=lambda item: item[1])]
            self.special = {inner.decoder[i] for i in inner.all_special_ids}  # each its own id, unmerged
        self.cache: dict[str, list[int]] = {}

    def __call__(self, texts: str | list[str], context_length: int | None = None) -> Any:
        return self.tokenize(texts, context_length)[0]

    def tokenize(self, texts: str | list[str], context_length: int | None = None) -> tuple[Any, list[bool]]:
        """The ids, as :meth:`__call__` gives them, and for each text whether they hold less than
        the whole of it: cut at the context (open_clip's tokenizer: more than ``context_length - 2``
        tokens besides start and end; another: the row is full) or at :data:`MAX_TEXT_CHARS`."""
        if isinstance(texts, str):
            texts = [texts]
        long = [len(text) > MAX_TEXT_CHARS for text in texts]
        texts = [text[:MAX_TEXT_CHARS] for text in texts]
        if not self.exact:
            result = self.inner(texts, context_length) if context_length else self.inner(texts)
            pad = getattr(getattr(self.inner, "tokenizer", None), "pad_token_id", None) or 0
            full = [False] * len(long)
            if result.ndim == 2 and result.shape[1]:
                full = (result[:, -1] != pad).tolist()
            return result, [cut or bool(filled) for cut, filled in zip(long, full, strict=True)]
        import torch

        context_length = context_length or self.context_length
        sot, eot = self.inner.sot_token_id, self.inner.eot_token_id
        result = torch.zeros(len(texts), context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [sot, *self.encode(text, context_length - 1), eot]  # that many: cut as open_clip cuts
            if len(tokens) > context_length:
                tokens = tokens[:context_length]
                tokens[-1] = eot
                long[row] = True
            result[row, :len(tokens)] = torch.tensor(tokens)
        return result, long

    def encode(self, text: str, limit: int | None = None) -> list[int]:
        """open_clip's ``encode(text)``, or its first ``limit`` ids at least."""
        ids: list[int] = []
        byte_encoder = self.inner.byte_encoder
        for match in self.inner.pat.finditer(self.inner.clean_fn(text)):
            ids.extend(self._word(''.join(byte_encoder[b] for b in match.group().encode("utf-8"))))
            if limit is not None and len(ids) >= limit:
                break
        return ids

    def _word(self, word: str) -> list[int]:
        ids = self.cache.get(word)
        if ids is None:
            symbols = [word] if word in self.special else merge(word, self.inner.bpe_ranks, self.pairs)
            ids = [self.inner.encoder[symbol] for symbol in symbols]
            if len(word) <= CACHED_WORD_CHARS:
                if len(self.cache) >= CACHE_WORDS:
                    self.cache.clear()
                self.cache[word] = ids
        return ids
