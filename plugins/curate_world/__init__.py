"""curate_world: an offline world of image–alt-text pairs with ground truth, and a loopback image host.

Every later stage (CLIP filtering, dedup, caption realignment, mixing) is measured against this
world. Modules, each with one job:

    vocab       shapes, colors, sizes, positions, backgrounds, fictional entities
    scene       ground-truth dataclasses and scene sampling
    describe    canonical description and its exact parser
    attributes  attribute extraction from any caption, and caption scoring
    render      Pillow drawing and deterministic encoding
    alttext     noisy alt-texts (faithful, partial, wrong_attribute, unrelated, boilerplate, empty)
    realign     the caption an annotator writes from image + alt-text
    duplicates  planted near-duplicate groups
    faults      download faults chosen per URL
    generate    writes a world directory; tables: its file layout and schemas
    server      the HTTP host that acts out the faults
    source      ``format: world`` for specs; cli: ``curate world generate|serve``

This module holds only the plugin hooks and imports nothing heavy.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_sources():  # type: ignore[no-untyped-def]
    from curate_world.source import WorldSource

    return [WorldSource]


@hookimpl(optionalhook=True)  # declared by curate_clip: without it, nothing asks
def curate_clip_vocabularies():  # type: ignore[no-untyped-def]
    from curate_world.vocab import edit_vocabulary

    return {"world": edit_vocabulary()}


@hookimpl
def curate_register_commands(cli) -> None:  # type: ignore[no-untyped-def]
    from curate_world.cli import world

    cli.add_command(world)
