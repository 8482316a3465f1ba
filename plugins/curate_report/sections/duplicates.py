"""Duplicate groups: the largest clusters a dedup step found, the survivor first and marked.

Any step qualifies whose dropped rows carry ``_duplicate_of`` (the uid of the row that stayed),
so exact and near-duplicate steps from any plugin show up here without registering anything.
"""

from __future__ import annotations

from typing import Any

from curate.duck import literal, quote
from curate.hashing import uniform_sql
from curate.schema import DUPLICATE_OF, UID
from curate_report.html import Html, badge, clip_text, esc, number, table, thumb
from curate_report.rundata import RunData

ORDER = 30
MAX_CLUSTERS = 4  # in the whole section, shared by the dedup steps
MAX_PER_CLUSTER = 6  # images in one strip, the survivor included


def build(data: RunData) -> dict[str, Any] | None:
    steps = [r for r in data.steps if DUPLICATE_OF in data.schema(r, "dropped")]
    if not steps:
        return None
    overview, strips = [], []
    per_step = max(1, MAX_CLUSTERS // len(steps))
    for record in steps:
        dropped = data.relation(record, "dropped")
        stats = data.query(f"SELECT count(*) AS rows, count(DISTINCT {DUPLICATE_OF}) AS clusters, "
                           f"max(n) AS largest FROM (SELECT {DUPLICATE_OF}, count(*) OVER "
                           f"(PARTITION BY {DUPLICATE_OF}) + 1 AS n FROM {dropped} WHERE {DUPLICATE_OF} IS NOT NULL)")
        rows, clusters, largest = stats.row(0)
        if not rows:
            continue
        overview.append([record["label"], number(rows), number(clusters), number(largest)])
        if len(strips) < MAX_CLUSTERS:
            strips.extend(cluster_strips(data, record, min(per_step, MAX_CLUSTERS - len(strips))))
    if not overview:
        return None
    html = table(["step", "duplicates dropped", "groups", "largest group"], overview, numeric=(1, 2, 3))
    html += Html("<p class='caption'>The largest groups; the row that stayed is outlined, the rest were "
                 "dropped as its duplicates.</p>" + "".join(strips))
    return {"title": "Duplicate groups", "html": html, "order": ORDER}


def cluster_strips(data: RunData, record: dict[str, Any], count: int) -> list[Html]:
    dropped, kept = data.relation(record, "dropped"), data.relation(record, "data")
    schema = {**data.schema(record, "data"), **data.schema(record, "dropped")}
    columns = [c for c in (UID, "alt_text", "image") if c in schema]
    selected = ", ".join(quote(c) for c in columns)
    draw = uniform_sql(UID, data.seed, salt="report-duplicates")
    largest = data.query(f"SELECT {DUPLICATE_OF} AS survivor, count(*) AS n FROM {dropped} "
                         f"WHERE {DUPLICATE_OF} IS NOT NULL GROUP BY 1 ORDER BY n DESC, survivor LIMIT {count}")
    if largest.height == 0:
        return []
    survivors = ", ".join(literal(str(s)) for s in largest["survivor"])
    members = data.query(f"""
        SELECT {selected}, {DUPLICATE_OF} FROM (
            SELECT *, row_number() OVER (PARTITION BY {DUPLICATE_OF} ORDER BY {draw}, {UID}) AS _rank
            FROM {dropped} WHERE {DUPLICATE_OF} IN ({survivors})
        ) WHERE _rank < {MAX_PER_CLUSTER} ORDER BY {DUPLICATE_OF}, _rank""")
    kept_rows = data.query(f"SELECT {selected} FROM {kept} WHERE {UID} IN ({survivors})") if kept else None
    by_uid = {row[UID]: row for row in kept_rows.iter_rows(named=True)} if kept_rows is not None else {}
    strips = []
    for survivor, size in largest.iter_rows():
        with_image = "image" in columns
        tiles = [tile(data, by_uid.get(survivor) or {UID: survivor}, True, with_image)]
        tiles += [tile(data, row, False, with_image) for row in members.iter_rows(named=True)
                  if row[DUPLICATE_OF] == survivor]
        more = size + 1 - len(tiles)
        tail = Html(f"<div class='more'>+{number(more)} more</div>") if more > 0 else ""
        strips.append(Html(f"<div class='strip'><div class='strip-head'>{esc(record['label'])}: group of "
                           f"{number(size + 1)}</div><div class='tiles'>{''.join(tiles)}{tail}</div></div>"))
    return strips


def tile(data: RunData, row: dict[str, Any], survivor: bool, with_image: bool) -> Html:
    mark = badge("kept", "#16a34a") if survivor else badge("dropped", "#94a3b8")
    text = clip_text(row.get("alt_text"), 80)
    picture = thumb(data.thumbnail(row.get("image")), text) if with_image else ""
    return Html(f"<figure class='tile{' survivor' if survivor else ''}' title='{esc(row.get(UID))}'>"
                f"{picture}<figcaption>{mark} {esc(text)}</figcaption></figure>")
