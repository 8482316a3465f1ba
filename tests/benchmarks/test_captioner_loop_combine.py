"""benchmarks/captioner_loop_combine.py: a stored summary's per-seed values rebuild the summary they
came from; new seeds join them; a rerun of a stored seed is kept (--prefer rerun) or only compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import captioner_loop_combine
from curate_train.gaps import summarize

ORDER = ["sft", "dpo"]


def _result(variant: str, seed: int, acc: float) -> dict:
    return {"variant": variant, "seed": seed, "rows": 10, "shape.acc1": acc, "shape.chance": 12.5,
            "steps": [{"label": "source", "cached": seed > 0}]}


def _results(seeds: range, offset: float = 0.0) -> dict[int, dict[str, dict]]:
    return {s: {v: _result(v, s, 10.0 + s + i + offset) for i, v in enumerate(ORDER)} for s in seeds}


def test_stored_values_rebuild_their_summary() -> None:
    stored = json.loads(json.dumps(summarize("x", _results(range(3)), ORDER)))  # as read from disk
    combined, reproduced = captioner_loop_combine.combine(stored, {})
    assert combined["gaps"] == stored["gaps"] and reproduced == {}
    assert combined["sources"] == {"stored": [0, 1, 2], "rerun": []}


@pytest.mark.parametrize("prefer", ["stored", "rerun"])
def test_new_seeds_join_and_reruns_are_compared(tmp_path: Path, prefer: str) -> None:
    combine = captioner_loop_combine
    stored = json.loads(json.dumps(summarize("x", _results(range(3)), ORDER)))
    for seed, by_variant in _results(range(5), offset=0.5).items():
        for variant, result in by_variant.items():
            folder = tmp_path / f"seed-{seed}" / variant
            folder.mkdir(parents=True)
            (folder / "result.json").write_text(json.dumps(result))
    combined, reproduced = combine.combine(stored, combine.run_results([tmp_path]), prefer)
    assert combined["seeds"] == [0, 1, 2, 3, 4]
    assert reproduced["seed 1 dpo"]["shape.acc1"] == {"stored": 12.0, "rerun": 12.5, "diff": 0.5}
    sft = combined["variants"][0]["shape.acc1_by_seed"]
    assert sft == ([10.0, 11.0, 12.0, 13.5, 14.5] if prefer == "stored" else [10.5, 11.5, 12.5, 13.5, 14.5])
    assert combined["sources"]["rerun"] == ([3, 4] if prefer == "stored" else [0, 1, 2, 3, 4])


def test_a_new_seed_missing_a_variant_is_refused(tmp_path: Path) -> None:
    combine = captioner_loop_combine
    stored = json.loads(json.dumps(summarize("x", _results(range(2)), ORDER)))
    with pytest.raises(SystemExit, match="seed 5: no result for variant"):
        combine.combine(stored, {5: {"sft": _result("sft", 5, 1.0)}})
