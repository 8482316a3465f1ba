"""The hook the ``clip`` plugin adds to curate (through ``curate_add_hookspecs``): other plugins
implement it with ``curate.hookimpl`` exactly like a core hook."""

from __future__ import annotations

from typing import Any

from curate.hookspecs import hookspec


@hookspec
def curate_clip_vocabularies() -> dict[str, dict[str, Any]]:
    """Named word vocabularies for ``clip_score``'s ``edits`` (``edits: NAME``), as plain data:
    ``{"classes": {class: {"words": [...], "synonyms": {...}, "nouns": bool}}, "max_count": n}``
    (``curate_clip.api.EditVocabulary`` checks it). Results of all plugins are concatenated
    (merged by name); a name provided twice is an error."""
