"""Writes ``plugins/curate_basics/grapheme_table.py`` from the ``regex`` module's Unicode data:

    PYTHONPATH=.:plugins python -m tests.basics.grapheme_table_make

:func:`regex_classes` is also what ``test_graphemes`` compares the committed table with, so a
``regex`` of another Unicode version fails that test until the table is written again."""

from __future__ import annotations

from pathlib import Path

from curate_basics.graphemes import (
    CLASS_NAMES,
    CONSONANT,
    EXTEND_INCB,
    HANGUL_FIRST,
    HANGUL_LAST,
    LINKER,
    LVT,
    OTHER,
    PICTOGRAPHIC,
)

TABLE = Path(__file__).resolve().parents[2] / "plugins" / "curate_basics" / "grapheme_table.py"


def every_code_point() -> str:
    return "".join(map(chr, range(0x110000)))


def regex_classes() -> dict[int, int]:
    """Each code point's class (:mod:`curate_basics.graphemes`) by ``regex``'s properties, but
    :data:`OTHER`, which is left out."""
    import regex

    text = every_code_point()
    classes: dict[int, int] = {}
    for value, name in enumerate(CLASS_NAMES):
        if value != OTHER:
            for c in regex.findall(rf"\p{{Grapheme_Cluster_Break={name}}}", text):
                classes[ord(c)] = value
    flags = {r"\p{Extended_Pictographic}": PICTOGRAPHIC, r"\p{InCB=Consonant}": CONSONANT,
             r"\p{InCB=Linker}": LINKER, r"\p{InCB=Extend}": EXTEND_INCB}
    for pattern, flag in flags.items():
        for c in regex.findall(pattern, text):
            classes[ord(c)] = classes.get(ord(c), OTHER) | flag
    return classes


def ranges(classes: dict[int, int]) -> list[tuple[int, int]]:
    """(first code point, class) of each run of one class; the Hangul syllables as one run (their
    LV/LVT is computed)."""
    runs: list[tuple[int, int]] = []
    for code in range(0x110000):
        value = LVT if HANGUL_FIRST <= code <= HANGUL_LAST else classes.get(code, OTHER)
        if not runs or runs[-1][1] != value:
            runs.append((code, value))
    return runs


def main() -> None:
    import regex

    runs = ranges(regex_classes())
    pairs = [f"(0x{start:X}, {value})," for start, value in runs]
    lines, line = [], "   "
    for pair in pairs:
        if len(line) + 1 + len(pair) > 110:
            lines.append(line)
            line = "   "
        line += " " + pair
    lines.append(line)
    TABLE.write_text(
        '"""Grapheme cluster classes of every code point (:mod:`curate_basics.graphemes`), written by\n'
        "``python -m tests.basics.grapheme_table_make`` from the ``regex`` module "
        f"{regex.__version__}\n(its Unicode data). Do not edit.\"\"\"\n\n"
        f'UNICODE_FROM = "regex {regex.__version__}"\n'
        "# (first code point, class) of each run of code points of one class, in code point order.\n"
        "RANGES = (\n" + "\n".join(lines) + "\n)\n"
    )
    print(f"wrote {TABLE}: {len(runs)} runs")


if __name__ == "__main__":
    main()
