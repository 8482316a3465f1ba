"""Average two checkpoints of the world CLIP in weight space (WiSE-FT, Wortsman et al. 2022).

    python -m curate_clip.training.average START FINETUNED --alpha 0.5 --export OUT.safetensors

``(1 - alpha) * START + alpha * FINETUNED``, tensor by tensor, for two checkpoints of the same
architecture: the start of an open_clip_train fine-tuning run and what the run made of it.
Fine-tuning on web-styled minimal pairs (``train-world --pairs … --pair-web-style``) moved the
drifted web mix up and the default mix a little down; halfway between keeps the first and loses
nothing measurable of the second (``training/EVAL.md``). Written as float16 safetensors, as shipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from curate.display import echo, visible


def average(start: Path, finetuned: Path, alpha: float, out: Path) -> None:
    import torch
    from curate_clip.models import export_safetensors
    from curate_clip.training.synonyms import load_state

    if not 0.0 <= alpha <= 1.0:
        raise SystemExit(f"--alpha is a weight in [0, 1] (got {alpha})")
    a, b = load_state(start), load_state(finetuned)
    if set(a) != set(b) or any(a[k].shape != b[k].shape for k in a):
        raise SystemExit(visible(f"{start} and {finetuned} are not checkpoints of one architecture "
                                 f"(tensors differ: {sorted(set(a) ^ set(b))[:5]})"))
    merged = out.with_suffix(".pt")
    torch.save({"state_dict": {k: (1 - alpha) * a[k].float() + alpha * b[k].float() for k in a}}, str(merged))
    export_safetensors(merged, out)
    merged.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start", type=Path)
    parser.add_argument("finetuned", type=Path)
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of FINETUNED")
    parser.add_argument("--export", type=Path, required=True, help="float16 safetensors to write")
    args = parser.parse_args(argv)
    average(args.start, args.finetuned, args.alpha, args.export)
    echo(f"{args.export}: {1 - args.alpha:g} x {args.start} + {args.alpha:g} x {args.finetuned}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
