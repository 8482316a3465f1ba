"""curate_world's public surface: the only names other plugins may import from curate_world.

Everything else in the package is private to it (``tests/test_plugin_layering.py`` checks), so it
can change without breaking the plugins that train and measure on the world. Each name is the
defining module's own object, imported on first use: importing this module costs nothing.

Ground truth on disk
    ``generate_world(out_dir, n, seed, ...)`` writes a world directory; ``WORLD_FILE`` (every
    row with its scene and alt-text) and ``REALIGNED_FILE`` (annotator captions) are file names in it.
Vocabulary
    ``SHAPES``, ``COLORS``, ``SIZES``, ``POSITIONS``, ``BACKGROUNDS``, ``TEXTURES``, ``ENTITIES``
    (fictional named logos); ``colors_visible_on(background)``; ``concept_names()``, every word or
    name an alt-text can use, each once.
Scenes
    ``Scene`` (the ground truth of one image; ``Scene.from_objects_json``), ``sample_scene(rng, ...)``,
    ``sorted_objects(objects)``, ``entity_logo(name, position, size)``.
Scene identity and the train / held-out partition (``curate_world.partition``)
    ``scene_key(scene)`` (canonical content), ``scene_hash``, ``scene_partition`` / ``partition_of_hash``,
    ``in_scene_set(scene, "train" | "heldout" | "any")``, ``SHIPPED_SCENES_FILE``, ``HELDOUT_SHARE``;
    ``world_scene(seed, j, ...)``, ``world_scene_count(n, seed, ...)`` and ``world_scenes(params)``
    (a world's scenes without drawing it), ``WorldParams``.
Text about a scene
    ``describe(scene)`` and its exact inverse ``parse_description(text)``; the noisy alt-text
    writers ``write_faithful``, ``write_partial``, ``write_wrong_attribute``, ``write_boilerplate``
    and their parts ``wrong_mention``, ``render_mention``, ``describes``, ``frame``; phrasing helpers
    ``counted``, ``join_list``, ``sentence_case``, ``plural``.
Scoring a text against a scene
    ``extract_attributes(text)`` (what a text says, in the world's vocabulary) and
    ``score_caption(caption, scene)`` (precision and recall of pairs, shapes, colors...).
Web styles (``curate_world.webstyle``)
    ``style_alt_text(text, rng, rate, weights)`` writes a text in the web's styles;
    ``style_weights(None)`` weighs every style alike; ``STYLES``, the style names.
Pipeline eval (``curate_world.web_eval``)
    ``proportion(successes, rows)``: a share with its 95 % Wilson interval, as the pipeline eval reports it;
    ``step_table(run_dir, label, columns)``: a run step's kept rows; ``captioner_from_run(run_dir)``:
    the realign step's captions scored against ground truth; ``clip_from_run(run_dir)``: the
    clip_score step's AUCs; ``clip_paired_gaps(before, after)``: two scorings of the same rows compared.
Rendering (Pillow, imported when called)
    ``render_scene(scene, size, rng, jitter)``, ``background_image(background, texture, side)``,
    ``encode_image(image, format, quality)`` (equal pixels give equal bytes); planted duplicates:
    ``sample_variant(rng)`` and ``DUP_JITTER``.
"""

from __future__ import annotations

from curate.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "curate_world.tables": ("WORLD_FILE", "REALIGNED_FILE"),
    "curate_world.generate": ("generate_world", "world_scene", "world_scene_count", "world_scenes"),
    "curate_world.partition": ("scene_key", "scene_hash", "scene_partition", "partition_of_hash", "in_scene_set",
                               "SHIPPED_SCENES_FILE", "HELDOUT_SHARE"),
    "curate_world.params": ("WorldParams",),
    "curate_world.vocab": ("SHAPES", "COLORS", "SIZES", "POSITIONS", "BACKGROUNDS", "TEXTURES", "ENTITIES",
                           "colors_visible_on", "concept_names", "COLOR_SYNONYMS", "SHAPE_SYNONYMS"),
    "curate_world.scene": ("Scene", "sample_scene", "sorted_objects", "entity_logo"),
    "curate_world.describe": ("describe", "parse_description", "describe_object", "join_phrases"),
    "curate_world.alttext": ("write_faithful", "write_partial", "write_wrong_attribute", "write_boilerplate",
                             "wrong_mention", "render_mention", "describes", "frame"),
    "curate_world.phrasing": ("counted", "join_list", "sentence_case", "plural"),
    "curate_world.attributes": ("extract_attributes", "score_caption"),
    "curate_world.render": ("render_scene", "background_image", "encode_image"),
    "curate_world.duplicates": ("sample_variant", "DUP_JITTER"),
    "curate_world.webstyle": ("style_alt_text", "style_weights", "STYLES"),
    "curate_world.web_eval": ("proportion", "step_table", "captioner_from_run", "clip_from_run", "clip_paired_gaps"),
})
