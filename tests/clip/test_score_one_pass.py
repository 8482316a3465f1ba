"""``clip_score`` runs both towers in one pass over the shard (texts tokenized in the DataLoader
workers beside the images, embeddings kept on the device until the shard ends): its scores are
the cosine of the image embedding and the text embedding computed one by one, for every text
column, with rows without an image or a text null, for any worker count and a last batch
smaller than the rest."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch

from curate_clip.score import ClipScore
from tests.clip.jpegs import encoded, photo, write


@pytest.mark.parametrize(("workers", "decode"), [(0, "loader"), (2, "loader"), (1, "device"), (2, "workers")])
def test_one_pass_scores_equal_one_by_one(tmp_path, workers, decode):
    files = {f"{i:02d}": encoded(photo(64 + 9 * i, 48 + 5 * i, i)) for i in range(11)}
    refs = write(tmp_path / "images", files)
    refs[3] = None  # a row without an image
    alt = [f"a photo of shapes number {i}" if i != 5 else None for i in range(11)]
    other = [f"shapes {i} on a gradient" for i in range(11)]
    table = pl.DataFrame({"uid": [str(i) for i in range(11)], "image": refs, "alt_text": alt, "caption": other})
    torch.manual_seed(0)
    step = ClipScore(ClipScore.Params(batch_size=4, workers=workers, decode=decode, device="cpu",
                                      texts=["alt_text", "caption"], store_embeddings=False))
    step.setup(None)  # type: ignore[arg-type]
    ctx = SimpleNamespace(extras={}, advance=lambda n: None, shard=0, artifacts=tmp_path / "artifacts",
                          image_folders=None)
    out = step.process_shard(table, ctx)  # type: ignore[arg-type]

    images, present = step._image_embeddings(refs, ctx)  # type: ignore[arg-type]
    assert present.tolist() == [i != 3 for i in range(11)]
    for column in ("alt_text", "caption"):
        scores = out["clip_score" if column == "alt_text" else "clip_score_caption"].to_list()
        for i, text in enumerate(table[column].to_list()):
            if text is None or not present[i]:
                assert scores[i] is None, (column, i)
                continue
            with torch.inference_mode():
                vector = step.clip.model.encode_text(step.clip.tokenizer([text]))
            vector = torch.nn.functional.normalize(vector.float(), dim=-1)[0].numpy()
            assert scores[i] == pytest.approx(float(images[i] @ vector), abs=1e-5), (column, i)
