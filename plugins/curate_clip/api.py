"""curate_clip's public surface: the only names other plugins may import from curate_clip.

Everything else in the package (the steps, checkpoint plumbing, the world CLIP's training code) is
private to it; ``tests/test_plugin_layering.py`` checks. Each name is the defining module's own
object, imported on first use: importing this module loads neither torch nor open_clip.

The world CLIP
    ``WORLD_MODEL`` (its open_clip config name, ``world-clip-tiny``), ``CONFIG_DIR`` (where that
    config's JSON lives), ``WORLD_CHECKPOINT`` (the shipped weights), and
    ``load_clip(model, pretrained, checkpoint, device)`` (any open_clip model, torch imported then).
    ``weights_to_come(folder)``: a context in which plan-time checks accept a ``local-dir:`` folder
    that has a config but no weights yet (a stand-in for a model a later stage trains).
    ``architecture_config(model)`` and ``config_problems(model, config, local)``: an open_clip
    config checked before anything is built from it (no Hugging Face tokenizer or text model, so
    no code from a model folder and no download; no size beyond any CLIP's).
    ``local_dir_files(model)``: what a ``local-dir:`` model reads, as the spec names it (the folder,
    its config, its weights), for the checks of a spec run with --untrusted.
Minimal edits
    ``EditVocabulary`` (what ``clip_score``'s ``edits`` and the ``curate_clip_vocabularies`` hook
    hold) and ``minimal_edits(text, vocabulary, limit)``.
Measuring a CLIP on a world
    ``score_world(world_dir, checkpoint)`` (the CLIP score of every row of a world's table),
    ``auc(positive, negative)``, and the alt-text kinds that count as ``POSITIVE`` and ``NEGATIVE``.
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_clip.models": ("WORLD_MODEL", "CONFIG_DIR", "WORLD_CHECKPOINT", "load_clip"),
    "curate_clip.checkpoints": ("weights_to_come", "architecture_config", "config_problems",
                                "local_dir_files"),
    "curate_clip.edits": ("EditVocabulary", "minimal_edits"),
    "curate_clip.training.evaluate": ("score_world", "auc", "POSITIVE", "NEGATIVE"),
})
