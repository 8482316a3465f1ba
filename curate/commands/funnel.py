"""The funnel table that ``curate run`` and ``curate inspect`` print: rows in and out per step,
drop reasons, timings, and which steps were cached."""

from __future__ import annotations

from typing import Any

from curate.display import for_rich


def _print_funnel(manifest: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from curate.runstore import funnel

    table = Table(title=for_rich(f"{manifest.get('name')} — {manifest.get('status')}"))
    for column in ("#", "step", "rows in", "rows out", "dropped", "seconds", "cached"):
        # names and reasons fold onto more lines in a narrow terminal, never cut ("failed_to_dow…")
        table.add_column(column, justify="right" if column in ("rows in", "rows out", "seconds") else "left",
                         overflow="fold" if column in ("step", "dropped") else "ellipsis")
    for row in funnel(manifest):
        # a reason a line: each made visible alone (the joined text showed its newlines as \x0a)
        dropped = "\n".join(for_rich(f"{k}: {v:,}") for k, v in row["dropped"].items()) or "-"
        label = row["label"] if row["label"] == row["step"] else f"{row['label']} ({row['step']})"
        table.add_row(
            str(row["index"]), for_rich(label),
            f"{row['rows_in']:,}" if row["rows_in"] is not None else "-",
            f"{row['rows_out']:,}" if row["rows_out"] is not None else "-",
            dropped, f"{row['seconds']:.2f}" if row["seconds"] is not None else "-",
            "yes" if row["cached"] else ("" if row["complete"] else "[red]incomplete[/red]"),
        )
    console.print(table)
