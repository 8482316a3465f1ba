"""curate: declarative, measurable curation of image–alt-text pretraining corpora.

Run a spec and read its results from Python with :func:`curate.run`, :func:`curate.validate`,
:func:`curate.plan_spec` and :func:`curate.open_run` (:mod:`curate.api`; README, "From Python").

Importing this package is cheap: no torch, open_clip, faiss, transformers or ray, and no polars,
pydantic or duckdb either. The names below load with their modules on first use (PEP 562): every
plugin's ``from curate import hookimpl`` runs at ``curate --help``, which needs none of them.
"""

from curate.exports import lazy_exports

__version__ = "0.1.0"

_names, __getattr__, __dir__ = lazy_exports("curate", {
    # running specs and reading runs from Python (README, "From Python")
    "curate.api": ("PlannedStepInfo", "SpecPlan", "open_run", "plan_spec", "run", "validate"),
    "curate.runresult": ("Drop", "OutputFacts", "Run", "RunMovedWarning", "StepFacts"),
    "curate.preflight": ("PreflightWarning",),
    "curate.errors": ("CurateError", "MissingDependencyError", "OutputError", "PluginError", "Problem",
                      "ResourceError", "RunDirError", "RunLockedError", "SourceError", "SpecError", "StepError",
                      "StorageError", "UsageError"),
    "curate.executor": ("Executor",),
    "curate.hookspecs": ("hookimpl",),
    "curate.params": ("PLACE", "Params", "StepParams"),
    "curate.schema": ("Image",),
    "curate.sink": ("Sink", "SinkContext"),
    "curate.source": ("Source", "SourceContext"),
    "curate.step": ("Step", "StepContext", "TableInput"),
})
__all__ = [*_names, "__version__"]
