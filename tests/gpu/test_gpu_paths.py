"""The GPU paths against their CPU references, on a CUDA device (skipped elsewhere): nvjpeg batch
decoding against PIL's (clip_score ``decode: device``), CUDA-graph decoding against the eager loop
(realign), torch SemDeDup on the GPU against the CPU and brute force.

Self-contained on purpose: a lent device carries only what its run imports, so this module needs
no conftest fixture, duckdb or hypothesis (``pytest --noconftest -m gpu tests/gpu`` runs it there).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_nvjpeg_decode_agrees_with_the_loader(tmp_path):
    from curate_clip.score import ClipScore
    from tests.clip.jpegs import EMBEDDING_TOLERANCE, encoded, photo, write

    sizes = [(256, 256)] * 6 + [(320, 200), (97, 301), (500, 375), (640, 480)]
    files = {f"{i:03d}": encoded(photo(w, h, i), quality=90) for i, (w, h) in enumerate(sizes)}
    good = files["000"]
    files.update({"truncated": good[: len(good) // 2], "png": encoded(photo(150, 100, 7), "PNG")})
    refs = write(tmp_path / "images", files)
    results = {}
    for decode in ("loader", "device", "workers"):
        step = ClipScore(ClipScore.Params(model="ViT-B-32", decode=decode, device="cuda", batch_size=8, workers=2))
        torch.manual_seed(0)
        step.setup(None)  # type: ignore[arg-type]
        ctx = SimpleNamespace(extras={}, advance=lambda n: None, image_folders=None)
        results[decode] = step._image_embeddings(refs, ctx)  # type: ignore[arg-type]
    for decode in ("device", "workers"):
        assert results["loader"][1].tolist() == results[decode][1].tolist() == [True] * 10 + [False, True]
        difference = np.linalg.norm(results["loader"][0] - results[decode][0], axis=1)
        print(f"{decode} decode vs PIL embedding difference: max", difference.max(), "mean", difference.mean())
        assert difference.max() < EMBEDDING_TOLERANCE, (decode, difference)


def tiny_captioner(kind: str, seed: int) -> Any:
    from curate_captioner.config import CaptionerConfig
    from curate_captioner.encoder import from_open_clip
    from curate_captioner.model import Captioner, tiny_decoder
    from curate_captioner.tokenizer import train_tokenizer
    from tests.captioner.conftest import TEXTS, TOWER

    tokenizer = train_tokenizer(TEXTS, vocab_size=320)
    torch.manual_seed(seed)
    tower, encoder_config = from_open_clip(TOWER, source="random test tower")
    decoder = tiny_decoder(len(tokenizer), hidden=32, layers=2, heads=2, kind=kind)
    config = CaptionerConfig(features="pooled", prefix_length=6, mapper_width=32, mapper_layers=1, mapper_heads=2,
                             name=f"test-{kind}")
    return Captioner.create(tower, encoder_config, decoder, tokenizer, config).eval()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("kind", ["llama", "gpt2", "opt"])
def test_cuda_graphs_equal_eager(kind: str, fused: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from curate_captioner import generate_static
    from curate_captioner.generate import generate
    from tests.captioner.conftest import images
    from tests.captioner.test_generate_static import PROMPTS

    monkeypatch.setattr(generate_static, "BUCKET", 8)  # the fused step crosses several attention windows
    captioner = tiny_captioner(kind, seed=3).to("cuda")
    with torch.no_grad():
        prefix = captioner.prefix(*captioner.image_features(images(len(PROMPTS))))
    eager = generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=False)
    graphs = [generate(captioner, prefix, PROMPTS, max_new_tokens=12, temperature=0, static=True, graphs=True,
                       fused=fused) for _ in range(2)]  # the first call captures, the second replays
    assert graphs[0] == graphs[1] == eager
    runners = captioner.__dict__["_static_decoders"].values()
    if fused:  # captured (one graph per attention window), not fallen back to eager
        assert all(runner.graphs and len(runner.fused_graphs) > 1 for runner in runners)
    else:
        assert all(runner.graph is not None for runner in runners)
    options = {"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.9, "seed": 7, "row_keys": [5, 6, 7, 8],
               "copy_bias": 2.0}
    assert generate(captioner, prefix, PROMPTS, static=True, fused=fused, **options) == \
        generate(captioner, prefix, PROMPTS, static=False, **options)


def test_torch_semdedup_gpu_equals_cpu_and_brute_force():
    from curate_dedup import near

    rng = np.random.default_rng(7)
    centers = rng.normal(size=(400, 64))
    rows = np.repeat(np.arange(400), rng.integers(1, 6, 400))
    vectors = centers[rows] + rng.normal(scale=0.003, size=(rows.size, 64))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)
    options = near.SemDedupOptions(clusters=None, niter=20, points_per_centroid=64, spill=0.02)
    found = {}
    for device in ("cpu", "gpu"):
        pairs = near.semdedup(vectors, 0.94, options, 0, device, engine="torch")
        found[device] = set(zip(pairs.first.tolist(), pairs.second.tolist(), strict=True))
    exact = near.brute_force(vectors, 0.94)
    assert found["gpu"] == found["cpu"] == set(zip(exact.first.tolist(), exact.second.tolist(), strict=True))
