"""The report's "Metadata balance" section: head and tail before and after each balancing step,
from the facts the step left in the manifest (nothing is re-read)."""

from __future__ import annotations

from typing import Any

ORDER = 35  # after duplicates (30), before captions (40)


def sections(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    from curate_report.api import Html, number, table

    records = [r for r in manifest.get("steps", []) if r.get("step") == "metadata_balance" and r.get("summary")]
    if not records:
        return []
    parts = []
    for record in records:
        facts = record["summary"]

        def share(key: str) -> str:
            value = facts.get(key)
            return "–" if value is None else f"{100 * value:.1f}%"

        t = facts.get("t")
        t_text = (", ".join(f"{language} {number(value)}" for language, value in t.items())
                  if isinstance(t, dict) else number(t))
        overview = [
            ["rows", number(facts.get("rows_in")), number(facts.get("rows_kept"))],
            ["matches (row × entry)", number(facts.get("matches_before")), number(facts.get("matches_after"))],
            [f"share of head entries (> t = {t_text}; {number(facts.get('head_entries'))} "
             f"of {number(facts.get('entries_matched'))})", share("head_share_before"), share("head_share_after")],
            ["share of the 10 most matched", share("top_share_before"), share("top_share_after")],
            ["flatness (entropy / log entries)", number(facts.get("entropy_before")),
             number(facts.get("entropy_after"))],
            ["most rows of one entry", number(facts.get("max_count_before")), number(facts.get("max_count_after"))],
        ]
        top = [[e.get("entry") if e.get("entry") is not None else f"#{e['entry_id']}", number(e["count"]),
                number(e["kept"])] for e in facts.get("top_entries", [])]
        parts.append(table([f"{record['label']}", "before", "after"], overview, numeric=(1, 2)))
        parts.append(table(["most matched entries", "rows before", "rows after"], top, numeric=(1, 2)))
    note = Html("<p class='caption'>MetaCLIP balancing: an entry matched by more than t rows selects each of "
                "them with probability t / count; a row stays when any of its entries selects it. The full "
                "counts are in the step's artifacts/entry_counts.parquet.</p>")
    return [{"title": "Metadata balance", "html": Html("".join([note, *parts])), "order": ORDER}]
