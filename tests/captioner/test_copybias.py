"""Choosing the copy bias: the rule (best attribute accuracy that keeps entity retention) as a
property, and `curate captioner select-copy-bias` writing the choice into a saved captioner."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from curate_captioner.copybias import choose
from curate_captioner.errors import CaptionerError
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.conftest import curate_main  # noqa: F401


shares = st.floats(0, 1, allow_nan=False)
results = st.lists(st.builds(lambda b, a, r: {"copy_bias": b, "attribute_accuracy": a, "entity_retention": r},
                             st.floats(0, 20, allow_nan=False), shares, st.one_of(st.none(), shares)),
                   min_size=1, max_size=8, unique_by=lambda r: r["copy_bias"])


@settings(max_examples=200, deadline=None)
@given(results, shares)
def test_the_choice_keeps_retention_and_nothing_allowed_beats_it(tried: list[dict[str, Any]], floor: float) -> None:
    def allowed(r: dict[str, Any]) -> bool:  # a world whose alt-texts name no entity cannot lose one
        return r["entity_retention"] is None or r["entity_retention"] >= floor

    if not any(allowed(r) for r in tried):
        with pytest.raises(CaptionerError, match="no copy bias keeps entity retention"):
            choose(tried, floor)
        return
    chosen = choose(tried, floor)
    assert chosen in tried and allowed(chosen)
    for other in filter(allowed, tried):
        assert other["attribute_accuracy"] < chosen["attribute_accuracy"] or (
            other["attribute_accuracy"] == chosen["attribute_accuracy"] and other["copy_bias"] >= chosen["copy_bias"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from curate_world.generate import generate_world

    return generate_world(tmp_path_factory.mktemp("world") / "w", n=120, seed=11, fault_rate=0.0, eval_n=0).dir


def test_select_copy_bias_writes_the_choice_into_the_model(world: Path, saved_captioner: Path, tmp_path: Path,
                                                           curate_main: Callable[..., Any]) -> None:
    from curate_captioner.config import CONFIG_FILE, WEIGHTS_FILE
    from curate_captioner.model import Captioner

    model = tmp_path / "model"
    shutil.copytree(saved_captioner, model)
    weights = (model / WEIGHTS_FILE).read_bytes()
    result = curate_main("captioner", "select-copy-bias", "--world", str(world), "--model", str(model),
                         "--values", "0,4", "--min-retention", "0", "--threads", "1")
    assert result.code == 0, result
    printed = json.loads(result.stdout)
    record = json.loads((model / CONFIG_FILE).read_text())["training"]["copy_bias_selection"]
    assert [r["copy_bias"] for r in record["results"]] == [0.0, 4.0] and record["chosen"] == printed["copy_bias"]
    assert record["chosen"] == choose(record["results"], 0.0)["copy_bias"]
    assert Captioner.load(model).config.copy_bias == record["chosen"]
    assert (model / WEIGHTS_FILE).read_bytes() == weights  # only the decoding default changed


@pytest.mark.parametrize(("args", "message"), [
    (["--values", "zero"], "not a comma-separated list"),
    (["--model", "MISSING_MODEL"], "is a directory but not a captioner"),
])
def test_bad_input_is_a_clear_error(world: Path, saved_captioner: Path, tmp_path: Path, args: list[str], message: str,
                                    curate_main: Callable[..., Any]) -> None:
    (tmp_path / "empty").mkdir()
    options = {"--world": str(world), "--model": str(saved_captioner), "--values": "0"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[flag] = str(tmp_path / "empty") if value == "MISSING_MODEL" else value
    result = curate_main("captioner", "select-copy-bias", *[x for kv in options.items() for x in kv])
    assert result.code != 0 and message in result.stderr and "Traceback" not in result.stderr, result
