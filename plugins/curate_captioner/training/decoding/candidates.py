"""Decode K candidate captions per row (seeds ``candidate_seed(0, k)``, as ``best_of`` does) with the
shipped world captioner at temperature T / top-p P on a world's first ROWS unseen rows; save each
candidate's caption, world-CLIP score and metrics (``compare.row_metrics``) to a parquet, for
``select.py``. Usage (README, "Decoding settings and best-of-N"):

    python candidates.py WORLD OUT.parquet ROWS K T P [EXCLUDE_WORLD ...]
"""
import sys, time
from pathlib import Path
import polars as pl, torch
from curate_captioner.compare import unseen_rows, row_metrics, clip_features
from curate_captioner.data import open_images, read_world, scene_content
from curate_captioner.evaluate import caption_rows
from curate_captioner.model import Captioner
from curate_captioner.rerank import candidate_seed
from curate_world.api import Scene

world, out, rows, K, T, P = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
exclude = [read_world(Path(w)) for w in sys.argv[7:]]
root = Path(world)
w = read_world(root)
picked = unseen_rows(w, exclude).sort("world_id").head(rows)
scenes = [Scene.from_objects_json(o, b, t) for o, b, t in picked.select("objects", "background", "texture").iter_rows()]
images = open_images([str(root / p) for p in picked["image_path"]])
alt = [a or "" for a in picked["alt_text"].to_list()]
named = picked["alt_mentions_entity"].to_list()
keys = picked["world_id"].to_list()
img = clip_features(images)
model = Captioner.load("world")
frames = []
for k in range(K):
    t0 = time.perf_counter()
    with torch.inference_mode():
        texts = caption_rows(model, images, alt, keys, batch_size=64, seed=candidate_seed(0, k), temperature=T, top_p=P,
                             copy_bias=model.config.copy_bias)
    dt = time.perf_counter() - t0
    txt = clip_features([], texts)
    clip = (txt * img).sum(dim=-1).tolist()
    m = row_metrics(texts, scenes, named)
    frames.append(pl.DataFrame({"row": list(range(len(texts))), "k": [k] * len(texts), "caption": texts, "clip": clip,
                                "n_objects": [len(s.objects) for s in scenes], **m}, strict=False))
    print(f"k={k} {len(texts)/dt:.1f} captions/s acc {sum(m['attribute_accuracy'])/len(texts):.4f}", flush=True)
pl.concat(frames).write_parquet(out)
