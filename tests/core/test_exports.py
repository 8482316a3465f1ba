"""curate.exports.lazy_exports: a plugin's api module, loaded name by name on first use."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from curate.errors import PluginError
from curate.exports import lazy_exports


@pytest.fixture
def api() -> Iterator[types.ModuleType]:
    """``fake_api`` publishing ``json.dumps`` and ``JSONDecodeError`` and ``textwrap.dedent``."""
    module = types.ModuleType("fake_api")
    module.__all__, module.__getattr__, module.__dir__ = lazy_exports("fake_api", {
        "json": ("dumps", "JSONDecodeError"),
        "textwrap": ("dedent",),
    })
    sys.modules["fake_api"] = module
    yield module
    del sys.modules["fake_api"]


def test_a_public_name_is_the_defining_modules_own_object(api: types.ModuleType) -> None:
    import json
    import textwrap

    assert api.__all__ == ["JSONDecodeError", "dedent", "dumps"]
    assert api.dumps is json.dumps and api.dedent is textwrap.dedent
    from fake_api import JSONDecodeError  # type: ignore[import-not-found]

    assert JSONDecodeError is json.JSONDecodeError
    assert "dumps" in vars(api)  # kept: the next access is a plain attribute lookup


def test_nothing_is_imported_before_a_name_is_used() -> None:
    module = types.ModuleType("fake_lazy_api")
    module.__all__, module.__getattr__, module.__dir__ = lazy_exports("fake_lazy_api", {
        "no_such_module_for_curate_tests": ("thing",),
    })
    sys.modules["fake_lazy_api"] = module
    try:
        assert "thing" in dir(module)
        with pytest.raises(ModuleNotFoundError):
            module.thing  # noqa: B018 - the access is the test
    finally:
        del sys.modules["fake_lazy_api"]


def test_an_unpublished_name_is_an_attribute_error(api: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match="'fake_api' has no attribute 'loads'"):
        api.loads  # noqa: B018
    with pytest.raises(ImportError, match="loads"):
        from fake_api import loads  # type: ignore[import-not-found]  # noqa: F401


def test_a_name_published_twice_is_an_error_naming_both_modules() -> None:
    with pytest.raises(PluginError, match=r"publishes 'dumps' twice \(from json and marshal\)"):
        lazy_exports("fake_api", {"json": ("dumps",), "marshal": ("dumps",)})
