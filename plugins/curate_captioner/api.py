"""curate_captioner's public surface: the only names other plugins may import from curate_captioner.

Everything else in the package is private to it; ``tests/test_plugin_layering.py`` checks. Each
name is the defining module's own object, imported on first use: importing this module loads
neither torch nor transformers (``Captioner`` does, when it is first used).

The model
    ``Captioner`` (``Captioner.load(model_dir_or_name, device)``; ``.image_features``, ``.prefix``,
    ``.save``).
Scoring a captioner on a world's held-out rows
    ``load_split(root, world, split)`` (a split's rows, scenes and images), ``caption_rows(captioner,
    images, prompts, keys, batch_size=, seed=)`` (seeded captions per row), and
    ``score_texts(texts, scenes, alt_names_entity, alt_texts)`` (attribute accuracy, pair
    precision and recall, entity retention and invention).
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_captioner.model": ("Captioner",),
    "curate_captioner.evaluate": ("load_split", "caption_rows", "score_texts"),
})
