"""Rich progress bars, one per step, fed by the engine's observer calls."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class RichObserver:
    def __init__(self, console: Console):
        self.progress = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=False,
        )
        self.tasks: dict[int, Any] = {}
        self.progress.start()

    def step_started(self, planned: Any, total_rows: int | None, cached: bool) -> None:
        label = f"{planned.index:02d} {planned.label}"
        self.tasks[planned.index] = self.progress.add_task(
            label, total=total_rows, note="cached" if cached else ""
        )
        if cached and total_rows is not None:
            self.progress.update(self.tasks[planned.index], completed=total_rows)

    def rows_done(self, planned: Any, rows: int) -> None:
        task = self.tasks.get(planned.index)
        if task is not None:
            self.progress.advance(task, rows)

    def step_finished(self, planned: Any, record: dict[str, Any]) -> None:
        task = self.tasks.get(planned.index)
        if task is None:
            return
        rows_in, rows_out = record.get("rows_in") or 0, record.get("rows_out") or 0
        note = "cached" if record.get("cached") else ""
        if rows_in != rows_out:
            note = (note + " " if note else "") + f"→ {rows_out:,} kept"
        self.progress.update(task, total=rows_in, completed=rows_in, note=note)

    def close(self) -> None:
        self.progress.stop()
