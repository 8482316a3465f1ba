"""curate: declarative, measurable curation of image–alt-text pretraining corpora.

Importing this package is cheap: no torch, open_clip, faiss, transformers or ray, and no polars,
pydantic or duckdb either. The names below load with their modules on first use (PEP 562): every
plugin's ``from curate import hookimpl`` runs at ``curate --help``, which needs none of them.
"""

from curate.exports import lazy_exports

__version__ = "0.1.0"

_names, __getattr__, __dir__ = lazy_exports("curate", {
    "curate.errors": ("CurateError", "MissingDependencyError", "PluginError", "SpecError", "StepError"),
    "curate.executor": ("Executor",),
    "curate.hookspecs": ("hookimpl",),
    "curate.params": ("PLACE", "Params", "StepParams"),
    "curate.schema": ("Image",),
    "curate.sink": ("Sink", "SinkContext"),
    "curate.source": ("Source", "SourceContext"),
    "curate.step": ("Step", "StepContext", "TableInput"),
})
__all__ = [*_names, "__version__"]
