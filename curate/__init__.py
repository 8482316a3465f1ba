"""curate: declarative, measurable curation of image–alt-text pretraining corpora.

Importing this package is cheap: no torch, open_clip, faiss, transformers or ray.
"""

from curate.errors import CurateError, MissingDependencyError, PluginError, SpecError, StepError
from curate.executor import Executor
from curate.hookspecs import hookimpl
from curate.params import Params, StepParams
from curate.schema import Image
from curate.sink import Sink, SinkContext
from curate.source import Source, SourceContext
from curate.step import Step, StepContext, TableInput

__version__ = "0.1.0"

__all__ = [
    "CurateError",
    "Executor",
    "Image",
    "MissingDependencyError",
    "Params",
    "PluginError",
    "Sink",
    "SinkContext",
    "Source",
    "SourceContext",
    "SpecError",
    "Step",
    "StepContext",
    "StepError",
    "StepParams",
    "TableInput",
    "hookimpl",
    "__version__",
]
