"""Independent auditor's scorer for curate pipeline runs on generated worlds.

Reads ONLY: the run's manifest.json (to locate step directories), the parquet shards the steps
wrote (kept and dropped rows, with the gt_* ground-truth columns the world source attaches).
Imports nothing from curate / curate_* (own parser, own pair counting, own intervals).

usage: python audit_score.py RUN_DIR [--out result.json] [--boot 1000]
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl

# ---- the world's closed vocabulary (copied by hand from the README / world.json, not imported) ----
SHAPES = ["circle", "square", "triangle", "star", "hexagon", "cross", "diamond", "heart"]
PLURAL = {"circles": "circle", "squares": "square", "triangles": "triangle", "stars": "star",
          "hexagons": "hexagon", "crosses": "cross", "diamonds": "diamond", "hearts": "heart"}
COLORS = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
BG_COLORS = ["white", "gray", "black", "beige", "green", "blue", "yellow", "pink"]
SIZES = ["small", "medium", "large"]
TEXTURE_ADJ = {"plain": "plain", "striped": "stripes", "dotted": "dots", "gradient": "gradient"}
POSITIONS = {  # phrase -> position, longest first when matching
    "in the top left corner": "top left", "in the top right corner": "top right",
    "in the bottom left corner": "bottom left", "in the bottom right corner": "bottom right",
    "at the top": "top", "at the bottom": "bottom", "on the left": "left", "on the right": "right",
    "in the center": "center",
}
ENTITIES = {  # name -> (shape, color)
    "Zorblax Tower": ("hexagon", "purple"), "Quillfeather Bank": ("diamond", "blue"),
    "Velmora Cola": ("circle", "red"), "Krandle Motors": ("square", "black"),
    "Orbitron Airlines": ("triangle", "orange"), "Pemberly Bridge": ("cross", "brown"),
    "Glimmerstone Castle": ("star", "pink"), "Nuvaro Telecom": ("heart", "green"),
    "Brisklet Shoes": ("circle", "yellow"), "Halvendor Lighthouse": ("triangle", "white"),
    "Tessaly Fountain": ("hexagon", "blue"), "Murkwater Brewery": ("square", "brown"),
    "Cindral Pharmacy": ("cross", "green"), "Yontab Stadium": ("diamond", "orange"),
    "Fennimore Gate": ("square", "purple"), "Drossel Coffee": ("circle", "brown"),
    "Lumaquin Studios": ("star", "yellow"), "Sprocketta Bikes": ("hexagon", "red"),
    "Wexhollow Abbey": ("heart", "black"), "Jastrel Dairy": ("triangle", "blue"),
}
COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
ENTITY_RE = re.compile("|".join(re.escape(n) for n in sorted(ENTITIES, key=len, reverse=True)), re.I)
# one object phrase: [count] [size] COLOR SHAPE[s] [with MARKER] [")"] [POSITION]
OBJ_RE = re.compile(
    r"\b(?:(?P<count>a|an|one|two|three|four|five|\d+)\s+)?(?:(?P<size>small|medium|large)\s+)?"
    r"(?:(?P<color>" + "|".join(COLORS) + r")\s+)?(?:(?P<size2>small|medium|large)\s+)?"
    r"(?P<shape>" + "|".join(sorted(list(PLURAL) + SHAPES, key=len, reverse=True)) + r")\b"
    r"(?:\s+with\s+(?:an?\s+)?(?:" + "|".join(COLORS) + r")\s+(?:stripes|dot|ring|bar|x)\b)?\)?"
    r"(?:\s+(?P<pos>" + "|".join(re.escape(p) for p in sorted(POSITIONS, key=len, reverse=True)) + r"))?",
    re.I)
BG_RE = re.compile(r"on an?\s+(?:(?P<tex>plain|striped|dotted|gradient)\s+)?(?P<bg>" + "|".join(BG_COLORS)
                   + r")\s+background", re.I)


def parse(text: str) -> dict:
    """Objects (shape, color, size, position, count), entities, background of a caption."""
    text = text or ""
    entities = [m.group(0) for m in ENTITY_RE.finditer(text)]
    entities = [next(n for n in ENTITIES if n.lower() == e.lower()) for e in entities]
    body = BG_RE.sub(" ", text)
    objects = []
    for m in OBJ_RE.finditer(body):
        shape_word = m.group("shape").lower()
        shape = PLURAL.get(shape_word, shape_word)
        count_word = (m.group("count") or "").lower()
        count = COUNTS.get(count_word) or (int(count_word) if count_word.isdigit() else None)
        if count is None:
            count = 2 if shape_word in PLURAL else 1
        pos = m.group("pos")
        objects.append({"shape": shape, "color": (m.group("color") or "").lower() or None,
                        "size": (m.group("size") or m.group("size2") or "").lower() or None,
                        "position": POSITIONS[pos.lower()] if pos else None, "count": count})
    bg = BG_RE.search(text)
    return {"objects": objects, "entities": entities,
            "background": bg.group("bg").lower() if bg else None,
            "texture": TEXTURE_ADJ[bg.group("tex").lower()] if bg and bg.group("tex") else None}


def truth(objects_json: str) -> list[dict]:
    return json.loads(objects_json)


def judge(caption: str, gt_objects: list[dict], gt_bg: str, gt_tex: str) -> dict:
    """Levels of attribute correctness of one caption against the image."""
    p = parse(caption)
    mentioned = Counter()
    for o in p["objects"]:
        mentioned[(o["color"], o["shape"])] += o["count"]
    shown = Counter((o["color"], o["shape"]) for o in gt_objects)
    n_mentioned = sum(mentioned.values())
    # L1 (README-like): the multiset of (colour, shape) mentioned equals the image's; an object
    # mentioned without a colour counts as a wrong pair.
    l1 = mentioned == shown
    # L1e: as L1 but an entity named whose logo pair is not otherwise mentioned counts as that pair
    # (the README's scorer does this); only differs when the caption names a logo without its look.
    m_e = Counter(mentioned)
    for o in gt_objects:
        ent = o.get("entity")
        if ent and ent in p["entities"] and m_e[(o["color"], o["shape"])] < shown[(o["color"], o["shape"])]:
            m_e[(o["color"], o["shape"])] += 1
    l1e = m_e == shown
    # L2: + every object's size; L3: + every object's grid position (matched as multisets of
    # (colour, shape, size[, position]) over singly-mentioned objects)
    singles = [o for o in p["objects"] if o["count"] == 1]
    all_single = len(singles) == len(p["objects"])
    l2 = l1 and all_single and Counter((o["color"], o["shape"], o["size"]) for o in singles) == \
        Counter((o["color"], o["shape"], o["size"]) for o in gt_objects)
    l3 = l2 and Counter((o["color"], o["shape"], o["size"], o["position"]) for o in singles) == \
        Counter((o["color"], o["shape"], o["size"], o["position"]) for o in gt_objects)
    # L4: + the background colour and texture stated and right
    bg_ok = p["background"] == gt_bg and p["texture"] == gt_tex
    l4 = l3 and bg_ok
    return {"l1": l1, "l1e": l1e, "l2": l2, "l3": l3, "l4": l4, "bg_ok": bg_ok,
            "count_ok": n_mentioned == len(gt_objects), "entities": p["entities"],
            "n_mentioned": n_mentioned}


# ---- intervals ----
def wilson(k: int, n: int, z: float = 1.959964) -> list[float] | None:
    if n == 0:
        return None
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [round(max(0.0, c - h), 4), round(min(1.0, c + h), 4)]


def cluster_boot(values: np.ndarray, clusters: np.ndarray, rounds: int, seed: int = 12345) -> list[float] | None:
    """Percentile bootstrap of the mean of `values`, resampling whole clusters (scenes)."""
    if len(values) == 0:
        return None
    uniq, inv = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inv, weights=values.astype(float))
    cnts = np.bincount(inv)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(uniq), size=(rounds, len(uniq)))
    est = sums[idx].sum(1) / np.maximum(cnts[idx].sum(1), 1)
    return [round(float(np.percentile(est, 2.5)), 4), round(float(np.percentile(est, 97.5)), 4)]


def prop(mask: np.ndarray, clusters: np.ndarray, rounds: int) -> dict:
    k, n = int(mask.sum()), int(len(mask))
    return {"k": k, "n": n, "value": round(k / n, 4) if n else None, "wilson": wilson(k, n),
            "cluster_boot": cluster_boot(mask, clusters, rounds)}


# ---- reading the run ----
def steps(run: Path) -> list[dict]:
    return json.loads((run / "manifest.json").read_text())["steps"]


def step_frames(record: dict) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """(kept rows, dropped rows) of a step, from its directory's parquet files."""
    d = Path(record["path"])
    kept, dropped = [], []
    for f in sorted((d / "data").glob("shard-*.parquet")):
        kept.append(pl.read_parquet(f))
    for f in sorted((d / "dropped").glob("shard-*.parquet")):
        dropped.append(pl.read_parquet(f))
    k = pl.concat(kept, how="diagonal_relaxed") if kept else pl.DataFrame()
    dr = pl.concat(dropped, how="diagonal_relaxed") if dropped else None
    return k, dr


def by_label(run: Path, label: str) -> dict | None:
    return next((r for r in steps(run) if r["label"] == label), None)


def score_captioner(run: Path, rounds: int) -> dict:
    rec = by_label(run, "realign")
    t, _ = step_frames(rec)
    t = t.filter(pl.col("caption_realigned").is_not_null())
    rows = []
    for r in t.iter_rows(named=True):
        gto = truth(r["gt_objects"])
        j = judge(r["caption_realigned"], gto, r["gt_background"], r["gt_texture"])
        ja = judge(r["alt_text"] or "", gto, r["gt_background"], r["gt_texture"])
        alt_ents = set(parse(r["alt_text"] or "")["entities"])
        cap_ents = set(j["entities"])
        img_ents = {o["entity"] for o in gto if o.get("entity")}
        rows.append({
            "scene": r["gt_scene_id"], "n_obj": r["gt_n_objects"], "noise": r["gt_noise_type"],
            "styled": bool(r.get("gt_styles")) if "gt_styles" in t.columns else False,
            "l1": j["l1"], "l1e": j["l1e"], "l2": j["l2"], "l3": j["l3"], "l4": j["l4"], "bg_ok": j["bg_ok"],
            "alt_l1": ja["l1"], "alt_l1e": ja["l1e"],
            "gt_named": bool(r["gt_alt_mentions_entity"]),
            # what the captioner actually read: the alt-text after normalize/strip, as the step saw it
            "alt_has_img_entity": bool(img_ents & alt_ents),
            "img_has_entity": bool(img_ents),
            "cap_keeps": bool(img_ents & cap_ents),
            "cap_foreign": bool(cap_ents - img_ents),            # names an entity not in the image
            "cap_invented": bool(cap_ents - img_ents - alt_ents),  # ...nor in the alt-text
            "cap_names_any": bool(cap_ents),
        })
    f = pl.DataFrame(rows)
    cl = f["scene"].to_numpy()

    def P(mask_expr, sub=None):
        g = f if sub is None else f.filter(sub)
        return prop(g.select(mask_expr).to_series().to_numpy(), g["scene"].to_numpy(), rounds)

    out = {"rows": f.height, "model": t["caption_model"].drop_nulls().first() if "caption_model" in t.columns else None}
    for lv in ("l1", "l1e", "l2", "l3", "l4", "bg_ok", "alt_l1"):
        out[f"attr_{lv}"] = P(pl.col(lv))
    # the captioner breaks an alt-text that was already right (L1e): of rows whose alt-text is right
    out["caption_wrong_when_alt_right"] = P(~pl.col("l1e"), pl.col("alt_l1e"))
    for k in sorted(f["n_obj"].unique().to_list()):
        out[f"attr_l1e_{k}obj"] = P(pl.col("l1e"), pl.col("n_obj") == k)
    # entity retention: README-like denominator (gt says the alt names the image's entity)
    out["retention_gt_named"] = P(pl.col("cap_keeps"), pl.col("gt_named"))
    # demanding: the alt-text the captioner received names the image's entity (own string match)
    out["retention_alt_as_read"] = P(pl.col("cap_keeps"), pl.col("alt_has_img_entity"))
    # where the two denominators disagree
    out["named_gt_but_not_in_read_alt"] = int(f.filter(pl.col("gt_named") & ~pl.col("alt_has_img_entity")).height)
    out["in_read_alt_but_not_gt_named"] = int(f.filter(~pl.col("gt_named") & pl.col("alt_has_img_entity")).height)
    # invented: README-like denominator (alt does not name the image's entity)
    out["invented_readme_denominator"] = P(pl.col("cap_invented"), ~pl.col("gt_named"))
    out["invented_all_rows"] = P(pl.col("cap_invented"))
    out["names_entity_not_in_image_all_rows"] = P(pl.col("cap_foreign"))
    out["names_entity_not_in_image_when_caption_names_one"] = P(pl.col("cap_foreign"), pl.col("cap_names_any"))
    out["recognised_logo_not_named_by_alt"] = P(pl.col("cap_keeps"), pl.col("img_has_entity") & ~pl.col("gt_named"))
    if f["styled"].any():
        out["attr_l1e_styled"] = P(pl.col("l1e"), pl.col("styled"))
        out["retention_gt_named_styled"] = P(pl.col("cap_keeps"), pl.col("gt_named") & pl.col("styled"))
    out["attr_l1e_by_noise"] = {n: P(pl.col("l1e"), pl.col("noise") == n) for n in sorted(f["noise"].unique())}
    return out


def pairs_of(labels: dict) -> set:
    groups: dict = {}
    for uid, g in labels.items():
        if g is not None:
            groups.setdefault(g, []).append(uid)
    out = set()
    for members in groups.values():
        members = sorted(members)
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                out.add((members[i], members[j]))
    return out


def score_dedup(run: Path, rounds: int) -> dict:
    rec = by_label(run, "dedup_semantic")
    kept, dropped = step_frames(rec)
    allrows = pl.concat([kept.select("uid", *[c for c in ("_duplicate_of", "dup_group") if c in kept.columns]),
                         dropped.select("uid", *[c for c in ("_duplicate_of", "dup_group", "_drop_reason")
                                                         if c in dropped.columns])] if dropped is not None else
                        [kept.select("uid")], how="diagonal_relaxed")
    # truth for every row the step saw: the step's input = the previous step's kept rows
    recs = steps(run)
    prev = recs[[r["label"] for r in recs].index("dedup_semantic") - 1]
    inp, _ = step_frames(prev)
    inp = inp.select("uid", "gt_dup_group", "gt_description", "gt_scene_id")
    seen = set(allrows["uid"].to_list())
    inp = inp.filter(pl.col("uid").is_in(list(seen)))
    # predicted groups from 'duplicate_of' links (union-find), own reconstruction
    parent = {u: u for u in inp["uid"].to_list()}

    def find(u):
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return u
    link_col = "_duplicate_of" if "_duplicate_of" in allrows.columns else None
    n_links = 0
    if link_col:
        for u, v in allrows.select("uid", link_col).drop_nulls().iter_rows():
            if u in parent and v in parent:
                parent[find(u)] = find(v)
                n_links += 1
    pred = {u: find(u) for u in parent}
    pred_sizes = Counter(pred.values())
    pred_lab = {u: (g if pred_sizes[g] > 1 else None) for u, g in pred.items()}
    planted = dict(inp.select("uid", "gt_dup_group").iter_rows())
    content = dict(inp.select("uid", "gt_description").iter_rows())
    P, T, C = pairs_of(pred_lab), pairs_of(planted), pairs_of(content)
    out = {"rows_seen": inp.height, "dropped": 0 if dropped is None else dropped.height, "links": n_links,
           "predicted_pairs": len(P), "planted_pairs": len(T), "both": len(P & T)}
    # bootstrap over components of the union graph (predicted ∪ planted), resampling components
    comp_parent = {u: u for u in parent}

    def cf(u):
        while comp_parent[u] != u:
            comp_parent[u] = comp_parent[comp_parent[u]]
            u = comp_parent[u]
        return u
    for a, b in P | T:
        comp_parent[cf(a)] = cf(b)
    comps = {}
    for a, b in P | T:
        c = cf(a)
        s = comps.setdefault(c, [0, 0, 0])
        s[0] += (a, b) in P
        s[1] += (a, b) in T
        s[2] += (a, b) in P and (a, b) in T
    arr = np.array(list(comps.values()), dtype=float) if comps else np.zeros((0, 3))
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(arr), size=(rounds, len(arr)))
    s = arr[idx].sum(1)
    prec_b, rec_b = s[:, 2] / np.maximum(s[:, 0], 1), s[:, 2] / np.maximum(s[:, 1], 1)
    out["precision"] = {"value": round(len(P & T) / len(P), 4) if P else None, "wilson_pairs": wilson(len(P & T), len(P)),
                        "component_boot": [round(float(np.percentile(prec_b, 2.5)), 4),
                                           round(float(np.percentile(prec_b, 97.5)), 4)]}
    out["recall"] = {"value": round(len(P & T) / len(T), 4) if T else None, "wilson_pairs": wilson(len(P & T), len(T)),
                     "component_boot": [round(float(np.percentile(rec_b, 2.5)), 4),
                                        round(float(np.percentile(rec_b, 97.5)), 4)]}
    out["components"] = len(arr)
    # content truth (identical scene description = duplicate, planted included)
    out["content_precision"] = {"value": round(len(P & C) / len(P), 4) if P else None, "pairs": len(P)}
    out["content_recall"] = {"value": round(len(P & C) / len(C), 4) if C else None, "pairs": len(C)}
    # row-level: each planted group should keep exactly one row
    kept_uids = set(kept["uid"].to_list())
    groups: dict = {}
    for u, g in planted.items():
        if g is not None:
            groups.setdefault(g, []).append(u)
    multi = {g: m for g, m in groups.items() if len(m) > 1}
    kept_per = Counter(sum(u in kept_uids for u in m) for m in multi.values())
    should_drop = sum(len(m) - 1 for m in multi.values())
    dropped_uids = seen - kept_uids
    true_drops = sum(1 for u in dropped_uids if planted.get(u) is not None and planted[u] in multi)
    out["row_level"] = {"planted_groups_multi": len(multi), "groups_by_rows_kept": dict(sorted(kept_per.items())),
                        "rows_that_should_go": should_drop, "rows_dropped": len(dropped_uids),
                        "dropped_rows_in_planted_group": true_drops,
                        "dropped_rows_not_planted_dup": len(dropped_uids) - true_drops}
    return out


def score_blend(run: Path) -> dict | None:
    rec = by_label(run, "mix")
    if rec is None:
        return None
    t, _ = step_frames(rec)
    src_col = "caption_source"
    res = {"rows": t.height, "source_values": t[src_col].value_counts().sort(src_col).rows()}
    synth = pl.col(src_col) == "synthetic"  # original / original_fallback = alt-text kept
    g = (t.with_columns(synth.alias("synthetic"))
         .group_by("gt_noise_type").agg(pl.len().alias("rows"), pl.col("synthetic").sum().alias("replaced"))
         .sort("gt_noise_type"))
    res["by_noise"] = {r["gt_noise_type"]: {"rows": r["rows"], "replaced": int(r["replaced"]),
                                            "kept_alt": r["rows"] - int(r["replaced"]),
                                            "replaced_wilson": wilson(int(r["replaced"]), r["rows"])}
                       for r in g.iter_rows(named=True)}
    res["synthetic_share"] = round(float(t.select(synth.mean()).item()), 4)
    # is the text that ends up in `caption` faithful? judge it at level l1e
    ok = [judge(c or "", truth(o), b, x)["l1e"] for c, o, b, x in
          t.select("caption", "gt_objects", "gt_background", "gt_texture").iter_rows()]
    res["final_caption_attr_l1e"] = {"k": int(sum(ok)), "n": len(ok), "value": round(sum(ok) / len(ok), 4),
                                     "wilson": wilson(int(sum(ok)), len(ok))}
    return res


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument("--only", default="dedup,captioner,blend")
    a = ap.parse_args()
    res: dict = {"run": str(a.run)}
    only = a.only.split(",")
    if "dedup" in only:
        res["dedup"] = score_dedup(a.run, a.boot)
    if "captioner" in only:
        res["captioner"] = score_captioner(a.run, a.boot)
    if "blend" in only:
        res["blend"] = score_blend(a.run)
    text = json.dumps(res, indent=1, default=str)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
