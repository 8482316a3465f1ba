"""curate_captioner: Altogether-style caption realignment.

A frozen open_clip image encoder, a small mapping network to 40 visual prefix tokens, and any
``transformers`` causal LM as decoder. It rewrites an image's alt-text into a caption that says
what the image shows and keeps what only the alt-text can know (names), or captions from scratch.

Modules, each with one job:

    config      the captioner's hyper-parameters and file names of a saved model directory
    tokenizer   a BPE tokenizer trained with ``tokenizers``, wrapped for ``transformers``
    encoder     an open_clip vision tower, saved and rebuilt from its config
    model       encoder + mapping network + decoder; save/load as one directory
    modelfiles  what a captioner directory must hold, checked from its configs and weights' header
    prompts     decoder inputs: [visual prefix][left-padded prompt][target], loss on the target only
    generate    batched sampling with a KV cache, seeded per row
    data        training examples for stage 1 (alt-text) and stage 2 (realigned captions)
    train       the training loop: checkpoints, resume, mixed precision, logging
    step        the ``realign`` and ``train_captioner`` steps; cli: ``curate captioner ...``
    preference  DPO / MCM-DPO losses; dpo: the preference stage; pairs, ranked: its pair tables
    guidance    classifier-free guidance at decode time; compare: captioners on an unseen world

This module holds only the plugin hooks and imports nothing heavy.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_steps():  # type: ignore[no-untyped-def]
    from curate_captioner.step import CaptionPairs, PreferenceCaptioner, Realign, TrainCaptioner

    return [Realign, TrainCaptioner, CaptionPairs, PreferenceCaptioner]


@hookimpl
def curate_register_commands(cli) -> None:  # type: ignore[no-untyped-def]
    from curate_captioner.cli import captioner
    from curate_captioner.cli_decoding import compare_decoding
    from curate_captioner.cli_preference import register

    register(captioner)
    captioner.add_command(compare_decoding)
    cli.add_command(captioner)
