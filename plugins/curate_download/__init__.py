"""Built-in plugin: the ``download`` step, which fetches images with img2dataset, and
``image_filter``, which drops rows whose image is degenerate (downloaded or local).

Modules: ``step`` (the step and its params), ``store`` (where images live: re-keyed by uid),
``worker`` (the network policy, and the child process that runs img2dataset), ``imagefilter``. Nothing heavy is
imported here; img2dataset itself is only ever imported by the worker process.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_steps():  # type: ignore[no-untyped-def]
    from curate_download.imagefilter import ImageFilter
    from curate_download.step import Download

    return [Download, ImageFilter]
