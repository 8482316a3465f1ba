"""curate_metadata: MetaCLIP's curation by metadata — substring matching and balancing.

    matching  MetaCLIP's spacing and boundary rules, the Aho-Corasick matcher, a reference loop
    entries   the metadata list: a file, or the world's concept names
    match     ``metadata_match``: matched entry ids per row, unmatched rows dropped
    balance   ``metadata_balance``: head entries sub-sampled to about t rows each
    report    the run report's "Metadata balance" section

This module holds only the plugin hooks and imports nothing heavy.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_steps():  # type: ignore[no-untyped-def]
    from curate_metadata.balance import MetadataBalance
    from curate_metadata.match import MetadataMatch

    return [MetadataMatch, MetadataBalance]


@hookimpl
def curate_report_sections(manifest):  # type: ignore[no-untyped-def]
    from curate_metadata.report import sections

    return sections(manifest)
