"""Built-in plugin: file sources and sinks, the local executor, and the generic steps.

It is discovered through the ``curate`` entry-point group, exactly like a third-party plugin.
"""

from __future__ import annotations

from curate import hookimpl

__version__ = "0.1.0"


@hookimpl
def curate_register_steps():
    from curate_basics.boilerplate import StripBoilerplate
    from curate_basics.dedup import ExactDedup
    from curate_basics.filter import Filter
    from curate_basics.normalize import NormalizeText
    from curate_basics.sample import Sample
    from curate_basics.select import Rename, Select
    from curate_basics.sql import Sql

    return [Sql, Filter, Sample, Select, Rename, NormalizeText, StripBoilerplate, ExactDedup]


@hookimpl
def curate_register_sources():
    from curate_basics.sources import AutoSource, CsvSource, JsonlSource, ParquetSource, TsvSource

    return [ParquetSource, CsvSource, TsvSource, JsonlSource, AutoSource]


@hookimpl
def curate_register_sinks():
    from curate_basics.sinks import CsvSink, JsonlSink, ParquetSink, UidListSink

    return [ParquetSink, JsonlSink, CsvSink, UidListSink]


@hookimpl
def curate_register_executors():
    from curate_basics.local import LocalExecutor

    return [LocalExecutor]
