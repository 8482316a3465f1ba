"""``curate clip train-world``, ``eval-world`` and ``edits``."""

from __future__ import annotations

import click
from curate_clip.training.hardneg import command as tune_world
from curate_clip.training.train import command as train_world

from curate.display import echo, visible


@click.group()
def clip() -> None:
    """The world CLIP: train it with open_clip_train, measure it on a held-out world."""


clip.add_command(train_world, "train-world")
clip.add_command(tune_world, "tune-world")


@clip.command("eval-world")
@click.option("--n", default=2000, show_default=True, help="rows of the held-out world")
@click.option("--seed", default=2000, show_default=True)
@click.option("--checkpoint", default=None, help="weights to evaluate (default: the shipped world CLIP)")
@click.option("--scenes", type=click.Choice(["heldout", "any"]), default="heldout", show_default=True,
              help="heldout: scenes no training world and no shipped model saw; any: the whole scene space")
@click.option("--out", default=None, help="write the numbers here as JSON")
def eval_world(n: int, seed: int, checkpoint: str | None, scenes: str, out: str | None) -> None:
    """AUC of the CLIP score separating true from noisy alt-text, per noise type."""
    import json

    from curate_clip.training.evaluate import evaluate

    result = evaluate(n=n, seed=seed, checkpoint=checkpoint, scenes=scenes)
    echo(json.dumps(result, indent=2), lines=True)
    if out:
        with open(out, "w") as handle:
            json.dump(result, handle, indent=2)


@clip.command("edits")
@click.argument("text")
@click.option("--vocabulary", default="world", show_default=True,
              help="a vocabulary's name (as clip_score's edits: NAME)")
@click.option("--limit", default=64, show_default=True, type=click.IntRange(1, 4096), help="as max_edits")
def edits(text: str, vocabulary: str, limit: int) -> None:
    """The minimal edits clip_score would score TEXT against (edits: VOCABULARY), one a line with
    the class whose word changed, after a line 'read as' with the text as the vocabulary reads it
    where that differs (synonyms, another language's words: the text's margin is its reading's);
    no model is loaded."""
    from curate_clip.edits import minimal_edits, reading, resolve_vocabulary, vocabulary_problem

    problem = vocabulary_problem(vocabulary)
    if problem is not None:
        raise click.ClickException(problem.removeprefix("edits: "))
    words = resolve_vocabulary(vocabulary)
    read = reading(text, words)
    found = minimal_edits(read, words, limit)
    if read != text and found:
        echo(f"read as\t{visible(read)}", lines=True)
    if not found:
        echo("no edits: the text has no word of the vocabulary (its margin would be null)")
    for edit in found:  # the edit escaped on its own: a tab or newline in TEXT cannot add a column or a line
        echo(f"{edit.kind}\t{visible(edit.text)}", lines=True)
