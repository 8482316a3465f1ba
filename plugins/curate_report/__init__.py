"""Built-in plugin: the run report, a self-contained HTML page of a run (``curate report RUN``)."""

from __future__ import annotations

__version__ = "0.1.0"
