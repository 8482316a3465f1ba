"""Charts: matplotlib figures rendered to SVG and embedded as data URIs.

Figures are made with ``matplotlib.figure.Figure`` directly, never through pyplot, so the report
neither picks nor changes a GUI backend in the process that runs it (a notebook, a Ray worker).
Text stays text in the SVG (``svg.fonttype: none``), which keeps a chart to a few kilobytes.
Without matplotlib the report still renders, with a note where each chart would be.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import warnings
from collections.abc import Callable
from typing import Any

from curate.errors import pip_install
from curate_report.html import Html, esc

# One palette for charts and CSS, so a drop reason has the same colour everywhere on the page.
ACCENT = "#4f46e5"
KEPT = "#4f46e5"
MUTED = "#94a3b8"
AMBER = "#f59e0b"
TIME = "#818cf8"
THRESHOLD = "#dc2626"
CATEGORICAL = ["#f97316", "#14b8a6", "#e11d48", "#8b5cf6", "#84cc16", "#0ea5e9", "#eab308", "#ec4899",
               "#64748b", "#22c55e"]

STYLE: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "curate-report",  # stable element ids: the same run renders the same bytes
    "font.family": "sans-serif",
    "font.sans-serif": ["Inter", "Helvetica Neue", "Arial", "DejaVu Sans"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.edgecolor": "#cbd5e1",
    "axes.labelcolor": "#334155",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e2e8f0",
    "grid.linewidth": 0.8,
    "xtick.color": "#475569",
    "ytick.color": "#475569",
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}

MISSING = f"chart omitted: matplotlib is not installed ({pip_install('report')})"


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def chart(draw: Callable[[Any], None], *, width: float = 7.5, height: float = 3.0, alt: str = "") -> Html:
    """Call ``draw(figure)`` on a fresh figure and return an ``<img>`` of it as inline SVG."""
    if not available():
        return Html(f'<p class="note">{esc(MISSING)}</p>')
    import matplotlib
    from matplotlib.figure import Figure

    buffer = io.BytesIO()
    with matplotlib.rc_context(STYLE), warnings.catch_warnings():
        # labels are web data (drop reasons, sources, variants): a glyph the font lacks is not an error
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from")
        figure = Figure(figsize=(width, height), layout="constrained")
        draw(figure)
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return Html(f'<img class="chart" alt="{esc(alt)}" src="data:image/svg+xml;base64,{encoded}">')


def short(label: Any, limit: int = 28) -> str:
    """A label for a chart: labels are web data (drop reasons, sources, variants), so control
    characters go (an SVG is XML, where they are fatal) and ``$`` stays a dollar, not mathtext."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(label))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def thousands(value: float, _position: Any = None) -> str:
    """Axis tick formatter: 1,200 → 1.2k, 3,400,000 → 3.4M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:g}"
