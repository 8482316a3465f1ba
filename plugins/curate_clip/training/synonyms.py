"""A starting checkpoint whose token embeddings know the web's words for colours and shapes.

The world CLIP's text tower has open_clip's full BPE vocabulary (49,408 tokens), but its training
texts use one word per colour and shape, so the rows of the web's synonyms (violet, grey, disc,
rhombus… ``curate_world.api.COLOR_SYNONYMS`` / ``SHAPE_SYNONYMS``) were never trained: they keep
their random initialisation (norm ~0.19 against ~0.40 for trained words), and an alt-text that
says "violet disc" reads as noise. A few web-styled minimal pairs cannot fix that: a synonym is in
~5 % of styled texts and each one rare. So before fine-tuning, each synonym that is one BPE token
(and its plural, for shapes) gets a copy of its canonical word's row; open_clip_train then tunes
them with the rest. Synonyms of several tokens (fuchsia, rhombus, lozenge, pentagram) are left
as they are and listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def synonym_rows() -> tuple[list[tuple[str, str, int, int]], list[str]]:
    """(synonym, canonical, synonym token, canonical token) for every synonym (and shape plural)
    that is one BPE token, as is its canonical word; and the synonyms that are not."""
    from curate_world.api import COLOR_SYNONYMS, SHAPE_SYNONYMS, plural
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    words = {**COLOR_SYNONYMS, **SHAPE_SYNONYMS}
    words |= {plural(s): plural(c) for s, c in SHAPE_SYNONYMS.items()}
    copied, skipped = [], []
    for synonym, canonical in sorted(words.items()):
        source, target = tokenizer.encode(canonical), tokenizer.encode(synonym)
        if len(source) == 1 and len(target) == 1:
            copied.append((synonym, canonical, target[0], source[0]))
        else:
            skipped.append(synonym)
    return copied, skipped


def load_state(checkpoint: Path) -> dict[str, Any]:
    """``checkpoint``'s tensors (safetensors, or a torch state dict read with weights_only) in float32."""
    from curate_clip.models import load_state_dict

    return {k: v.float() for k, v in load_state_dict(checkpoint).items()}


def synonym_init(checkpoint: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """Write ``checkpoint`` with each one-token synonym's embedding row set to its canonical
    word's, as a ``.pt`` open_clip_train's ``--pretrained`` reads; return it and what was done."""
    import torch

    state = load_state(checkpoint)
    table = state["token_embedding.weight"]
    copied, skipped = synonym_rows()
    for _, _, target, source in copied:
        table[target] = table[source]
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, str(out))
    return out, {"copied": {s: c for s, c, _, _ in copied}, "left_as_they_are": skipped}
