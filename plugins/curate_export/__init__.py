"""Exports that training clients read: WebDataset shards (open_clip_train, webdataset) and an
imagefolder with ``metadata.jsonl`` (HF ``datasets``). Parquet and DataComp uid lists are in
curate_basics."""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_sinks():
    from curate_export.sinks import ImageFolderSink, WebDatasetSink

    return [WebDatasetSink, ImageFolderSink]
