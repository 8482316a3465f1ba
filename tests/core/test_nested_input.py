"""Input nested past Python's stack (JSON in a run directory or a model file, SQL in a spec) is a
clear error naming what was read, never an internal RecursionError (security probe)."""

from __future__ import annotations

import os
import threading

import pytest

from curate.runfiles import json_value, read_json
from tests.conftest import sample_table

DEEP = "[" * 5000 + "]" * 5000


def test_deep_json_is_a_value_error_naming_the_file(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(DEEP)
    with pytest.raises(ValueError, match="x.json is JSON nested too deep to read"):
        read_json(path)
    with pytest.raises(ValueError):
        json_value(DEEP)
    assert json_value("[[1]]") == [[1]]


def test_a_deep_manifest_is_a_damaged_run_directory(curate_main, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(DEEP)
    for args in (["inspect", str(run)], ["run", "--resume", str(run)]):
        result = curate_main(*args)
        assert result.code != 0 and "internal error" not in result.stderr, result
        assert "manifest.json" in result.stderr


def test_a_deep_safetensors_header_is_not_a_safetensors_file(tmp_path):
    import struct

    from curate.safetensors_header import NotSafetensors, read_header

    path = tmp_path / "model.safetensors"
    header = DEEP.encode()
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(NotSafetensors, match="its header is not a JSON object"):
        read_header(path)


def test_a_deep_captioner_config_is_a_problem(tmp_path):
    from curate_captioner.modelfiles import _read_json

    path = tmp_path / "captioner.json"
    path.write_text(DEEP)
    problems: list[str] = []
    assert _read_json(path, problems) is None
    assert len(problems) == 1 and "is not JSON" in problems[0] and "nested too deep" in problems[0]


def test_an_export_listing_that_is_deep_or_a_pipe_is_not_curates(tmp_path):
    """A FIFO named _CURATE_EXPORT.json in an output folder hung the run forever."""
    from curate_export.folder import LISTING, _listing

    (tmp_path / LISTING).write_text(DEEP)
    assert _listing(tmp_path) is None
    (tmp_path / LISTING).unlink()
    os.mkfifo(tmp_path / LISTING)
    answer = []
    reader = threading.Thread(target=lambda: answer.append(_listing(tmp_path)), daemon=True)
    reader.start()
    reader.join(10)
    assert answer == [None]


@pytest.mark.parametrize("depth, refused", [(150, False), (400, True), (900, True)])
@pytest.mark.parametrize("where", ["filter", "sql"])
def test_sql_nested_past_what_curate_reads_is_refused_at_validate(curate_main, write_spec, depth, refused, where):
    nested = "abs(" * depth + "score" + ")" * depth
    step = ({"step": "filter", "params": {"where": f"{nested} > 0"}} if where == "filter" else
            {"step": "sql", "params": {"query": f"SELECT * FROM input WHERE {nested} > 0"}})
    write_spec({"name": "deep", "source": {"path": "data.parquet"}, "steps": [step], "run": {"dir": "run"}},
               table=sample_table(10))
    result = curate_main("validate", "spec.yaml")
    assert "internal error" not in result.stderr, result
    assert (result.code == 2) is refused, result
    if refused:
        assert "nested too deep for curate to check" in result.stderr

