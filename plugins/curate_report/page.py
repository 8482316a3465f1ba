"""Assembling report.html: sections from every plugin's ``curate_report_sections``, a header with
the run's numbers, a table of contents, and the stylesheet, in one self-contained file."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from curate.atomic import write_text_atomic
from curate.runstore import read_manifest
from curate_report.html import Html, esc, join, number, percent, slug, tag
from curate_report.sections import ReportWarning, failed_section
from curate_report.theme import CSS

REPORT = "report.html"


def collect_sections(pm: Any, run_dir: Path, manifest: dict[str, Any],
                     image_dirs: tuple[Path, ...] | None = None) -> list[dict[str, Any]]:
    """Every plugin's sections, sorted by ``order``. Implementations are called one by one, so a
    plugin whose hook raises costs its own sections (with a warning naming it), not the page.
    ``image_dirs``: where the page may read steps' rows and images (default: the run directory alone)."""
    from curate_report.images import image_dirs as image_dirs_of

    arguments = {"run_dir": Path(run_dir), "manifest": manifest,
                 "image_dirs": image_dirs if image_dirs is not None else image_dirs_of(Path(run_dir))}
    sections: list[dict[str, Any]] = []
    for impl in pm.hook.curate_report_sections.get_hookimpls():
        try:
            result = impl.function(**{name: arguments[name] for name in impl.argnames})
        except Exception as exc:  # noqa: BLE001 - a plugin's bug costs its sections, not the page
            warnings.warn(f"plugin '{impl.plugin_name}' failed to build its report sections: "
                          f"{type(exc).__name__}: {exc}", ReportWarning, stacklevel=2)
            sections.append(failed_section(f"{impl.plugin_name} sections", exc, 1000))
            continue
        for section in result or []:
            if isinstance(section, dict) and isinstance(section.get("title"), str) and "html" in section:
                sections.append(section)
            else:
                warnings.warn(f"plugin '{impl.plugin_name}' returned a report section without 'title' and "
                              f"'html'; it is left out: {section!r:.120}", ReportWarning, stacklevel=2)
    return sorted(sections, key=lambda s: s.get("order", 100) if isinstance(s.get("order"), int | float) else 100)


# The page is self-contained (images are data: URIs, charts inline SVG, no script): the browser is
# told so. Alt-texts are escaped where they are written, and a section from a plugin that forgot to
# escape one still runs no script and fetches nothing (a tracking pixel, a remote stylesheet).
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
                           "form-action 'none'")


def render_page(manifest: dict[str, Any], sections: list[dict[str, Any]]) -> str:
    ids: set[str] = set()
    anchored = [(slug(s["title"], ids), s) for s in sections]
    toc = join(tag("li", tag("a", s["title"], href=f"#{anchor}")) for anchor, s in anchored)
    body = join(Html(f'<section class="panel" id="{anchor}"><h2>{esc(s["title"])}</h2>{s["html"]}</section>')
                for anchor, s in anchored)
    name = manifest.get("name") or "curation"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(name)} · curate run report</title><style>{CSS}</style></head>"
        f'<body><div class="layout"><nav class="toc"><div class="toc-title">Contents</div><ol>{toc}</ol></nav>'
        f"<main>{header(manifest)}{body}{footer(manifest)}</main></div></body></html>\n"
    )


def header(manifest: dict[str, Any]) -> Html:
    steps = manifest.get("steps", [])
    complete = [s for s in steps if s.get("complete")]
    source = complete[0].get("rows_out") if complete else None
    final = complete[-1].get("rows_out") if complete else None
    seconds = manifest.get("seconds")
    compute, cached = compute_seconds(manifest)
    status = manifest.get("status", "unknown")
    color = {"complete": "#16a34a", "failed": "#dc2626", "interrupted": "#d97706"}.get(status, "#64748b")
    stats = [(number(source), "rows from the source"), (number(final), "rows in the final step"),
             (percent(final, source), "kept"), (f"{len(complete)} / {len(steps)}", "steps complete"),
             (duration(seconds), "this run's time"),
             (duration(compute), "compute behind the outputs"
              + (f" ({cached} of {len(complete)} steps cached)" if cached else ""))]
    cards = join(Html(f'<div class="stat"><div class="value">{esc(v)}</div><div class="label">{esc(k)}</div></div>')
                 for v, k in stats)
    meta = [f"status <b style='color:{color}'>{esc(status)}</b>",
            f"started {esc(manifest.get('started_at', '–'))}",
            f"spec <code>{esc(manifest.get('spec_hash', '–'))}</code>",
            f"seed {esc(manifest.get('seed', '–'))}",
            f"executor {esc(manifest.get('executor', '–'))}"]
    error = (f"<p class='note bad'>{esc(manifest['error'])}</p>" if manifest.get("error") else "")
    outputs = join(Html(f"<li>{esc(o.get('format'))} ← {esc(o.get('step'))} → <code>{esc(o.get('path'))}</code></li>")
                   for o in manifest.get("outputs", []))
    outputs_html = f"<ul class='meta'>{outputs}</ul>" if outputs else ""
    return Html(f'<header class="run"><div class="eyebrow">curate run report</div><h1>{esc(manifest.get("name"))}</h1>'
                f'<div class="meta">{" · ".join(meta)}</div>{error}<div class="stats">{cards}</div>'
                f"{outputs_html}</header>")


def compute_seconds(manifest: dict[str, Any]) -> tuple[float | None, int]:
    """(seconds the complete steps took when they were computed, how many of them came from the
    cache). A cached step's record keeps the time of the run that computed it, so a fully cached
    re-run that took a second still shows the minutes its outputs cost."""
    complete = [s for s in manifest.get("steps", []) if s.get("complete")]
    times = [s["seconds"] for s in complete if isinstance(s.get("seconds"), int | float)]
    return (round(sum(times), 3) if times else None), sum(1 for s in complete if s.get("cached"))


def duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def footer(manifest: dict[str, Any]) -> Html:
    plugins = ", ".join(f"{esc(name)} {esc(version or '')}" for name, version in manifest.get("plugins", {}).items())
    return Html(f"<footer>Rendered by curate {esc(manifest.get('curate_version', ''))} from "
                f"<code>{esc(manifest.get('run_dir', ''))}</code>, finished {esc(manifest.get('finished_at', '–'))}."
                f"<details><summary>plugins</summary>{plugins or '–'}</details></footer>")


def write_report(run_dir: Path | str, out: Path | str | None = None, pm: Any = None,
                 manifest: dict[str, Any] | None = None, read_from: Iterable[Path | str] = (),
                 images_from: Iterable[Path | str] = ()) -> Path:
    """Render the report of ``run_dir`` to ``out`` (default RUN_DIR/report.html), atomically.
    Steps' rows and images are read from inside the run directory and the ``read_from`` folders
    only (``images_from``: its old name, the same)."""
    from curate_report.images import image_dirs
    if pm is None:
        from curate.plugins import get_plugin_manager

        pm = get_plugin_manager()
    run_dir = Path(run_dir)
    manifest = manifest if manifest is not None else read_manifest(run_dir)
    page = render_page(manifest, collect_sections(pm, run_dir, manifest, image_dirs(run_dir, [*read_from, *images_from])))
    target = Path(out) if out is not None else run_dir / REPORT
    write_text_atomic(target, page, encoding="utf-8", keep_same=True)
    return target
