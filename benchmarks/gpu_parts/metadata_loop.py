"""The metadata-balancing closed loop with the `world` CLIP, on a GPU: the pools curated on the CPU
machine (specs/experiment_metadata_balance.yaml: `balanced` = metadata_balance t = 200, `unbalanced`
= a uniform sample of the matched pool of the same size) travel as their world ids
(`metadata_loop_pools.json.gz`, written here by `python -m benchmarks.gpu_parts.metadata_loop
--pools RUN_DIR`); the device regenerates each world from its seed (curate_world, no DuckDB needed),
trains curate_clip's `world-clip-tiny` (64 px ViT 3x128, text 2x128) from scratch on each pool for
the same number of steps, and evaluates zero-shot on a uniform eval world, head and tail apart.

Not open_clip_train: a minimal loop (open_clip's model and ClipLoss, AdamW, warmup + cosine, bf16
autocast, a seeded permutation per epoch), because the device has no webdataset tars; the pools,
the eval, the templates and the groups are the CPU experiment's. Seed s: world s, pool draws of the
CPU run's seed s, initialization and order s, for both variants (paired).
"""

from __future__ import annotations

import gzip
import json
import math
import time
from pathlib import Path
from typing import Any

SECONDS = 150  # the session leaves ~160 s for parts; seeds that do not fit are skipped (stops at 80 %)
POOLS = Path(__file__).with_name("metadata_loop_pools.json.gz")
TEMPLATES = {"shapes": ["a {}", "a large {}", "a picture of a {}", "a {} shape"],
             "colors": ["a {} shape", "a large {} shape", "something {}", "a large {} object on a background"]}
GROUPS = {"shapes": {"head": ["circle", "square", "triangle", "star"], "tail": ["hexagon", "cross", "diamond", "heart"]},
          "colors": {"head": ["red", "orange", "yellow", "green", "blue"],
                     "tail": ["purple", "pink", "brown", "black", "white"]}}


def write_pools(run_dir: Path, out: Path = POOLS) -> dict[str, Any]:
    """The world ids each variant trained on, per seed, read from a finished CPU run's manifests."""
    import polars as pl

    from curate.shards import iter_shard_files

    seeds: dict[str, dict[str, list[int]]] = {}
    for folder in sorted(run_dir.glob("seed-*")):
        if not all((folder / v / "result.json").is_file() for v in ("balanced", "unbalanced")):
            continue  # an unfinished seed
        pools = {}
        for variant in ("balanced", "unbalanced"):
            manifest = json.loads((folder / variant / "curate" / "manifest.json").read_text())
            uids = pl.concat([pl.read_parquet(f, columns=["uid"]) for f in
                              iter_shard_files(Path(manifest["steps"][-1]["path"]))])["uid"]
            pools[variant] = sorted(int(u.split("-")[1]) for u in uids)
        seeds[folder.name.removeprefix("seed-")] = pools
    data = {"world": {"n": 6000, "concept_skew": 2.0, "entity_rate": 0.0, "fault_rate": 0.0},
            "eval": {"seed": 1000, "n": 2000, "entity_rate": 0.0}, "seeds": seeds}
    out.write_bytes(gzip.compress(json.dumps(data, separators=(",", ":")).encode()))
    return {"seeds": list(seeds), "bytes": out.stat().st_size}


def _images(world: Path, paths: list[str], preprocess: Any):
    import torch
    from PIL import Image

    return torch.stack([preprocess(Image.open(world / p).convert("RGB")) for p in paths])


def _train(images, tokens, seed: int, steps: int, batch: int, device: str, model_name: str) -> Any:
    import open_clip
    import torch

    torch.manual_seed(seed)
    model = open_clip.create_model(model_name).to(device)
    loss_fn = open_clip.loss.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "logit_scale" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                  lr=2e-3, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, steps // 20)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    cursor = 0
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else torch.autocast("cpu", enabled=False)
    model.train()
    for step in range(steps):
        lr = 2e-3 * (step + 1) / warmup if step < warmup else \
            2e-3 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        if cursor + batch > len(order):  # a new epoch: a new seeded permutation
            order, cursor = torch.randperm(len(images), generator=generator), 0
        index = order[cursor:cursor + batch]
        cursor += batch
        with autocast:
            image_features, text_features, scale = model(images[index].to(device, non_blocking=True),
                                                         tokens[index].to(device, non_blocking=True))[:3]
            loss = loss_fn(image_features, text_features, scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    model.eval()
    return model


def _evaluate(model, tokenizer, eval_images, labels: dict[str, list[str]], device: str) -> dict[str, float]:
    import torch

    results = {}
    with torch.no_grad():
        features = torch.nn.functional.normalize(model.encode_image(eval_images.to(device)).float(), dim=-1)
        for name, truth_names in labels.items():
            classes = sorted(set(truth_names))
            prompts = [t.format(c) for c in classes for t in TEMPLATES[name]]
            text = torch.nn.functional.normalize(model.encode_text(tokenizer(prompts).to(device)).float(), dim=-1)
            weights = torch.nn.functional.normalize(text.reshape(len(classes), len(TEMPLATES[name]), -1).mean(1), dim=-1)
            predicted = (features @ weights.T).argmax(1).cpu()
            truth = torch.tensor([classes.index(c) for c in truth_names])
            results[f"{name}.acc1"] = round(100 * (predicted == truth).float().mean().item(), 2)
            for group, members in GROUPS[name].items():
                mask = torch.tensor([c in members for c in truth_names])
                results[f"{name}.acc1_{group}"] = round(100 * (predicted[mask] == truth[mask]).float().mean().item(), 2)
    return results


def run(out: Path, seconds: float, smoke: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    try:
        import open_clip
        import polars as pl
        import torch

        from curate_train.clip import prepare
        from curate_train.gaps import paired
        from curate_world.api import generate_world
    except ImportError as exc:
        return {"skipped": f"missing {exc.name}"}
    if not POOLS.is_file():
        return {"skipped": f"no {POOLS.name}: write it with --pools RUN_DIR after the CPU run"}
    data = json.loads(gzip.decompress(POOLS.read_bytes()))
    device = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    steps, batch = (4, 16) if smoke else (1500, 256)
    seeds = sorted(data["seeds"], key=int)[: 2 if smoke else None]
    model_name = prepare("world")
    _, _, preprocess = open_clip.create_model_and_transforms(model_name)
    tokenizer = open_clip.get_tokenizer(model_name)
    scratch = out / "worlds"
    ev = data["eval"]
    generate_world(scratch / "eval", n=50, seed=ev["seed"], fault_rate=0.0, entity_rate=ev["entity_rate"],
                   eval_n=40 if smoke else ev["n"], realign_fraction=0.0)
    table = pl.read_parquet(scratch / "eval" / "eval.parquet")
    eval_images = _images(scratch / "eval", table["image_path"].to_list(), preprocess)
    labels = {"shapes": table["label_shape"].to_list(), "colors": table["label_color"].to_list()}
    results: dict[str, dict[str, dict[str, float]]] = {}
    for seed in seeds:
        if time.monotonic() - started > seconds * 0.8:
            break
        world = scratch / f"world-{seed}"
        generate_world(world, n=200 if smoke else data["world"]["n"], seed=int(seed),
                       concept_skew=data["world"]["concept_skew"], entity_rate=data["world"]["entity_rate"],
                       fault_rate=0.0, eval_n=0, realign_fraction=0.0)
        pairs = pl.read_parquet(world / "world.parquet").select("world_id", "image_path", "alt_text")
        results[seed] = {}
        for variant, ids in data["seeds"][seed].items():
            rows = pairs.filter(pl.col("world_id").is_in(ids))
            if smoke:
                rows = rows.head(32) if len(rows) else pairs.head(32)
            images = _images(world, rows["image_path"].to_list(), preprocess)
            tokens = tokenizer(rows["alt_text"].fill_null("").to_list())
            began = time.monotonic()
            model = _train(images, tokens, int(seed), steps, batch, device, model_name)
            results[seed][variant] = {"rows": len(rows), "train_seconds": round(time.monotonic() - began, 1),
                                      **_evaluate(model, tokenizer, eval_images, labels, device)}
        (out / "metadata_loop.json").write_text(json.dumps(results, indent=2))
    done = [s for s in results if len(results[s]) == 2]
    gaps = {}
    if done:
        for metric in [k for k in results[done[0]]["balanced"] if k.startswith(("shapes", "colors"))]:
            gaps[metric] = paired([results[s]["balanced"][metric] - results[s]["unbalanced"][metric] for s in done])
        for part in ("", "_tail", "_head"):
            gaps[f"zeroshot{part}"] = paired([(results[s]["balanced"][f"shapes.acc1{part}"]
                                               + results[s]["balanced"][f"colors.acc1{part}"]
                                               - results[s]["unbalanced"][f"shapes.acc1{part}"]
                                               - results[s]["unbalanced"][f"colors.acc1{part}"]) / 2 for s in done])
    return {"device": device, "steps": steps, "batch": batch, "seeds": done, "results": results,
            "gaps_balanced_minus_unbalanced": gaps, "seconds": round(time.monotonic() - started, 1)}


if __name__ == "__main__":
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pools", type=Path, help="a finished CPU run directory: write the pools file")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.pools:
        print(write_pools(args.pools))
    else:
        with tempfile.TemporaryDirectory(prefix="meta-gpu-") as scratch:
            print(json.dumps(run(Path(scratch), SECONDS, smoke=args.smoke), indent=2)[:3000])
