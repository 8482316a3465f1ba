"""Small English helpers shared by alt-text writers: articles, plurals, number words, lists."""

from __future__ import annotations

NUMBER_WORDS: dict[int, str] = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "sh", "ch")) else noun + "s"


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def counted(count: int, words: list[str]) -> str:
    """``counted(2, ["red", "circle"])`` -> "two red circles"; ``counted(1, ["orange", "star"])`` ->
    "an orange star". The last word is the noun."""
    noun = words[-1] if count == 1 else plural(words[-1])
    phrase = " ".join([*words[:-1], noun])
    return f"{article(phrase)} {phrase}" if count == 1 else f"{NUMBER_WORDS[count]} {phrase}"


def join_list(items: list[str], conjunction: str = "and") -> str:
    if len(items) <= 2:
        return f" {conjunction} ".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]
