"""Which characters ``normalize_text``'s ``strip_control`` removes, and which it keeps.

Controls: the C0 and C1 control characters but tab, line feed and carriage return (which are
whitespace), and DEL, each become a space (:data:`CONTROL`).

Invisible format characters (Unicode's general category ``Cf``) are removed when they carry no
meaning in text and can hide text or change how the text around them is shown (:data:`INVISIBLE`):

- the bidi embeddings and overrides U+202A-U+202E (LRE, RLE, PDF, LRO, RLO) and isolates
  U+2066-U+2069 (LRI, RLI, FSI, PDI): they reorder what is shown (``invoice \\u202egpj.exe`` shows
  as ``invoice exe.jpg``; the "Trojan Source" attack), and ``curate.display`` escapes them too;
- U+200B ZERO WIDTH SPACE, U+2060 WORD JOINER, U+FEFF ZERO WIDTH NO-BREAK SPACE (BOM) anywhere,
  U+00AD SOFT HYPHEN: line-breaking hints that split a word for search, dedup and tokenizers
  (``Ver\\u00adsicherung``) and hide inside words;
- U+2061-U+2064, the invisible mathematical operators (function application, times, separator,
  plus), U+206A-U+206F (deprecated shaping and digit controls) and U+FFF9-U+FFFB (interlinear
  annotation controls): markup for other uses, invisible in alt-text;
- U+E0001 LANGUAGE TAG and the tag characters U+E0020-U+E007F, which are invisible copies of ASCII
  (text spelled in them is hidden from a reader and read by a model), except in the three emoji
  tag sequences Unicode recommends (RGI, UTS #51): U+1F3F4 WAVING BLACK FLAG, the tags ``gbeng``,
  ``gbsct`` or ``gbwls``, U+E007F CANCEL TAG: the flags of England, Scotland and Wales. Emoji
  fonts draw no other tag sequence (a flag of Texas shows as the black flag alone, as it does once
  its tags are removed), and any subdivision code would let seven hidden letters through a flag
  (``ignore`` is one).

Every other ``Cf`` character is kept, because it changes what the text says or how it is drawn:

- U+200C ZERO WIDTH NON-JOINER and U+200D ZERO WIDTH JOINER: Persian and Indic spelling
  (``می‌خواهم``, Devanagari half forms, Sinhala conjuncts) and emoji ZWJ sequences (``👩‍💻``,
  ``👨‍👩‍👧‍👦``, ``🏳️‍🌈``: without the joiners, two or four emoji);
- U+200E LEFT-TO-RIGHT MARK, U+200F RIGHT-TO-LEFT MARK, U+061C ARABIC LETTER MARK: right-to-left
  text places its punctuation and numbers with them; a mark is a strong character of one
  direction, and cannot reorder the letters around it as an override does;
- the prepended concatenation marks U+0600-U+0605, U+06DD, U+070F, U+0890-U+0891, U+08E2,
  U+110BD, U+110CD (Arabic number signs, end of ayah, Kaithi number signs): visible signs drawn
  around the digits that follow;
- U+180E MONGOLIAN VOWEL SEPARATOR (selects the form of the vowel after it), the Egyptian
  hieroglyph format controls U+13430-U+1343F, the shorthand format controls U+1BCA0-U+1BCA3
  and the musical symbol format controls U+1D173-U+1D17A: they lay out their scripts.

Not ``Cf`` and not touched: variation selectors (U+FE00-U+FE0F, U+E0100-U+E01EF: emoji or text
presentation, ideographic variants), combining marks, the Hangul fillers (U+115F, U+1160,
U+3164, U+FFA0: letters, though they show as blank).
"""

from __future__ import annotations

from curate.display import FLAG_TAG_SEQUENCE

# Both patterns are read by Python's re and by the Rust regex engine polars uses, alike.
CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
INVISIBLE = (r"[\u00ad\u200b\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
             r"\U000e0001\U000e0020-\U000e007f]")
# U+1F3F4, then "gb" and "eng", "sct" or "wls" in tag letters, then U+E007F CANCEL TAG: the one
# rule curate.display shows tag characters by.
EMOJI_TAG_SEQUENCE = FLAG_TAG_SEQUENCE
# Replaced by its group: an emoji tag sequence stays whole, any other invisible character goes.
# Leftmost-first in both engines: at U+1F3F4 the sequence is tried first.
STRIP = f"({EMOJI_TAG_SEQUENCE})|{INVISIBLE}"
