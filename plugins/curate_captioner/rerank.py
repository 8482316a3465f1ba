"""Best-of-N decoding: sample N captions per row and keep the one the world CLIP scores highest.

Candidate 0 is decoded with the run's own seed, so it is the caption ``best_of: 1`` writes;
candidate k > 0 with a seed derived from (seed, k), each row still drawing from its own stream
(a row's candidates do not depend on its batch). The scorer is ``curate_clip``'s world CLIP
(:func:`curate_captioner.worldclip.world_clip_scores`'s model and preprocessing); ties keep the
earliest candidate. Sampling only: greedy decoding (temperature 0) makes N identical captions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from curate_captioner.errors import CaptionerError


def candidate_seed(seed: int, k: int) -> int:
    """The decoding seed of candidate ``k`` (0: the run's own seed)."""
    return seed if k == 0 else int(np.random.SeedSequence([seed, k]).generate_state(1)[0])


def check_best_of(best_of: int, temperature: float) -> None:
    if best_of < 1:
        raise CaptionerError(f"best_of {best_of}: needs at least one candidate", "use best_of: 1 (off) or more")
    if best_of > 1 and temperature <= 0:
        raise CaptionerError(f"best_of {best_of} with temperature {temperature}: greedy decoding makes "
                             f"{best_of} identical captions", "set temperature > 0 (default 0.2) or best_of: 1")


def pick_best(images: Sequence[Any], candidates: Sequence[Sequence[str]]) -> list[int]:
    """Per row, the index of the candidate (``candidates[k][row]``) the world CLIP scores highest
    against the row's image (first on ties); each image and each distinct text is encoded once."""
    import torch

    from curate_captioner.worldclip import _scorer

    model, preprocess, tokenizer = _scorer()
    texts = sorted({text or "" for column in candidates for text in column})
    with torch.no_grad():
        image_features = torch.cat([model.encode_image(torch.stack([preprocess(i) for i in images[s : s + 128]]))
                                    for s in range(0, len(images), 128)]).float()
        text_features = torch.cat([model.encode_text(tokenizer(texts[s : s + 128]))
                                   for s in range(0, len(texts), 128)]).float()
    image_features = torch.nn.functional.normalize(image_features, dim=-1)
    text_features = torch.nn.functional.normalize(text_features, dim=-1)
    index = {text: i for i, text in enumerate(texts)}
    scores = torch.stack([(text_features[[index[t or ""] for t in column]] * image_features).sum(dim=-1)
                          for column in candidates])  # (N, rows)
    # argmax returns the first maximum: ties keep the earliest candidate
    return scores.argmax(dim=0).tolist()


def best_of_captions(images: Sequence[Any], decode: Callable[[int], list[str]], *, best_of: int, seed: int) -> list[str]:
    """``decode(seed)`` captions the rows of ``images`` once; with ``best_of`` > 1 it is called for
    each candidate's seed and each row keeps its world-CLIP best."""
    first = decode(seed)
    if best_of <= 1:
        return first
    candidates = [first] + [decode(candidate_seed(seed, k)) for k in range(1, best_of)]
    picks = pick_best(images, candidates)
    return [candidates[k][row] for row, k in enumerate(picks)]
