"""Summary table from res_*.json (own scorer) and proj_*.json (project's web_eval on the same runs)."""
import json, os
def f(x): return "—" if x is None else f"{x:.3f}"
def ci(v, key):
    c = v.get(key)
    return f"[{c[0]:.3f}, {c[1]:.3f}]" if c else ""
runs = [r for r in ("w1", "w2", "qs0", "qs1", "qs2") if os.path.exists(f"res_{r}.json")]
rows = []
for r in runs:
    d = json.load(open(f"res_{r}.json"))
    p = json.load(open(f"proj_{r}.json")) if os.path.exists(f"proj_{r}.json") else None
    dd = d["dedup"]
    rows.append((r, "dedup pair precision", f"{f(dd['precision']['value'])} {ci(dd['precision'],'component_boot')} W{ci(dd['precision'],'wilson_pairs')} ({dd['predicted_pairs']} pairs)",
                 f(p["dedup"]["precision"]["value"]) if p else ""))
    rows.append((r, "dedup pair recall", f"{f(dd['recall']['value'])} {ci(dd['recall'],'component_boot')} W{ci(dd['recall'],'wilson_pairs')} ({dd['planted_pairs']} pairs)",
                 f(p["dedup"]["recall"]["value"]) if p else ""))
    c = d.get("captioner")
    if c:
        pc = p["captioner"] if p else None
        for key, name, pk in [("attr_l1", "attr acc L1 (colour+shape multiset, README-like)", "attribute_accuracy"),
                              ("attr_l2", "attr acc L2 (+size)", None), ("attr_l3", "attr acc L3 (+position)", None),
                              ("attr_l4", "attr acc L4 (+background colour & texture)", None),
                              ("caption_wrong_when_alt_right", "caption wrong although alt-text right (L1e)", None),
                              ("retention_gt_named", "entity retention (gt: alt names entity)", "entity_retention"),
                              ("retention_alt_as_read", "entity retention (alt as read names it)", None),
                              ("invented_readme_denominator", "invented entity (README denominator)", "entity_invented"),
                              ("invented_all_rows", "invented entity (all rows)", None),
                              ("names_entity_not_in_image_all_rows", "names entity not in image (all rows)", "names_entity_not_in_image"),
                              ("attr_l1e_styled", "attr acc L1e, web-styled rows", None),
                              ("retention_gt_named_styled", "entity retention, web-styled rows", None)]:
            v = c.get(key)
            if not v: continue
            proj = f(pc[pk]["value"]) if (pc and pk) else ""
            rows.append((r, name, f"{f(v['value'])} {ci(v,'cluster_boot')} W{ci(v,'wilson')} ({v['k']}/{v['n']})", proj))
    b = d.get("blend")
    if b:
        s = ", ".join(f"{k} {v['replaced']}/{v['rows']}" for k, v in b["by_noise"].items())
        rows.append((r, "blend replaced (by noise type)", s + f"; synthetic {b['synthetic_share']:.3f}", ""))
print("| run | figure | auditor's scorer: value [scene/component bootstrap] W[Wilson] (k/n) | project's web_eval |")
print("|---|---|---|---|")
for r in rows: print("| " + " | ".join(r) + " |")
