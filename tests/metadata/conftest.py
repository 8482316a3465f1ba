"""A plugin manager with curate_basics and curate_metadata."""

from __future__ import annotations

import curate_metadata
import pytest

from curate.plugins import PluginManager


@pytest.fixture
def metadata_pm(pm: PluginManager) -> PluginManager:
    pm.register(curate_metadata, name="metadata", distribution="curate", version=curate_metadata.__version__)
    return pm
