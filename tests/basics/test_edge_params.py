"""Edge values a spec writer hits (found by probing each step with them): each is either taken and
right, or refused at validation with the param named, never a wrong result or an internal error."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate.testing import run_step
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"uid": ["a", "b", "c", "d"], "url": ["x", "x", "y", "y"], "alt_text": ["1", "2", "3", "4"],
                      "s": [0.1, float("nan"), float("nan"), 0.5]})


@pytest.mark.parametrize("width", [pl.Float64, pl.Float32, pl.Float16])
@pytest.mark.parametrize(("keep", "kept"), [("max", ["a", "d"]), ("min", ["a", "d"])])
def test_exact_dedup_orders_nan_as_no_value(keep, kept, width):
    """keep: max let NaN beat every number (DuckDB orders NaN largest); dedup_exact's keep treats it as null
    (a Float16 NaN still won: column-types probe)."""
    table = TABLE.with_columns(pl.col("s").cast(width))
    result = run_step("exact_dedup", table, {"columns": ["url"], "keep": keep, "order_by": "s"}, shard_size=1)
    assert sorted(result.kept["uid"].to_list()) == kept


def run(write_spec, curate_main, steps, table=None, outputs=(), **run):  # noqa: F811
    write_spec({"name": "edge", "source": {"path": "data.parquet"}, "steps": steps, "outputs": list(outputs),
                "run": {"dir": "run", "report": False, **run}}, table=(TABLE if table is None else table).drop("uid"))
    return curate_main("run", "spec.yaml", "--quiet")


@pytest.mark.parametrize(("steps", "said"), [
    ([{"step": "sql", "params": {"query": "SELECT *, 1 AS _shard FROM input"}}, {"step": "sample", "params": {"count": 1}}],
     "steps[0].params: the step's output would have a column '_shard': names starting with '_' are curate's own"),
    ([{"step": "rename", "params": {"mapping": {"url": ""}}}], "the step's output would have a column named ''"),
    ([{"step": "sql", "params": {"query": "SELECT 1 AS uid"}}], "the query's 'uid' column is Int32, not text"),
    ([{"step": "sql", "params": {"query": "SELECT * FROM input", "drop_reason": ""}}], "steps[0].params.drop_reason"),
    ([{"step": "normalize_text", "params": {"max_length": 2**63}}], "steps[0].params.max_length: must be ≤ 2147483647"),
    ([{"step": "sample", "params": {"count": 1, "by": ""}}], "steps[0].params.by"),
])
def test_refused_at_validation_naming_the_param(write_spec, curate_main, workdir, steps, said):
    result = run(write_spec, curate_main, steps)
    assert result.code == 2, result
    assert said in result.stderr and "internal error" not in result.stderr
    assert "error: 1 problem" in result.stderr  # said once, where it starts


def test_an_enum_an_sql_query_makes_is_text_for_the_steps_after_it(write_spec, curate_main, workdir):
    steps = [{"step": "sql", "params": {"query": "SELECT *, CAST('x' AS ENUM('x', 'y')) AS c FROM input"}},
             {"step": "sample", "params": {"count": 1, "by": "c"}}]
    assert run(write_spec, curate_main, steps, outputs=[{"format": "parquet", "path": "o.parquet"}]).code == 0
    out = pl.read_parquet(workdir / "run" / "o.parquet")
    assert out.height == 1 and out.schema["c"] == pl.Utf8


def test_a_sinks_columns_are_each_named_once(write_spec, curate_main, workdir):
    result = run(write_spec, curate_main, [], outputs=[{"format": "parquet", "path": "o.parquet",
                                                       "params": {"columns": ["uid", "uid"]}}])
    assert result.code == 2 and "outputs[0].params.columns: names 'uid' more than once" in result.stderr


@pytest.mark.parametrize(("uids", "form"), [
    (["a", "0a", "A", "000A"], "hashed"),  # read as hex, all four were 10
    (["x" * 32, "y" * 32], "hashed"),  # 32 characters but not hex: was a ValueError
    ([f"{i:016x}" for i in (1, 2, 3)], "16-hex"),
    ([f"{i:032x}" for i in (1, 2, 3)], "32-hex"),
])
def test_the_uid_list_gives_every_uid_its_own_number(write_spec, curate_main, workdir, uids, form):
    table = pl.DataFrame({"uid": uids, "url": ["u"] * len(uids), "alt_text": ["t"] * len(uids)})
    write_spec({"name": "uids", "source": {"path": "data.parquet"}, "steps": [],
                "outputs": [{"format": "uids", "path": "o.npy"}], "run": {"dir": "run", "report": False}}, table=table)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    array = np.load(workdir / "run" / "o.npy")
    assert len(np.unique(array)) == len(uids)
    if form == "16-hex":
        assert array.tolist() == [1, 2, 3]
    if form == "32-hex":
        assert array.dtype.names is not None and [tuple(r) for r in array.tolist()] == [(0, 1), (0, 2), (0, 3)]


def test_bytes_and_lists_of_lists_are_written_as_text_by_the_text_sinks(write_spec, curate_main, workdir):
    import json

    table = pl.DataFrame({"uid": ["a", "b"], "url": ["u", "v"], "alt_text": ["t", "s"],
                          "blob": [b"\x00\xff", None], "grid": [[[1, 2], [3]], None], "tags": [["x", "y"], []]})
    write_spec({"name": "text", "source": {"path": "data.parquet"}, "steps": [],
                "outputs": [{"format": "jsonl", "path": "o.jsonl"}, {"format": "csv", "path": "o.csv"}],
                "run": {"dir": "run", "report": False}}, table=table)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    lines = [json.loads(line) for line in (workdir / "run" / "o.jsonl").read_text().splitlines()]
    assert [row["blob"] for row in lines] == ["AP8=", None] and lines[0]["grid"] == [[1, 2], [3]]
    csv = pl.read_csv(workdir / "run" / "o.csv")
    assert csv["blob"].to_list() == ["AP8=", None] and json.loads(csv["grid"][0]) == [[1, 2], [3]]
    assert csv["grid"][1] is None and csv["tags"].to_list() == ['["x","y"]', "[]"]  # an empty list, not a null


def test_the_csv_sink_writes_each_list_so_that_it_reads_back_as_it_was(write_spec, curate_main, workdir):
    """Joined by '|', [1, null, 3] was "1|3" as [1, 3] was, and ["a|b"] was ["a", "b"] (column-types probe)."""
    import json

    lists = [[1, None, 3], [1, 3], [None], [], None]
    texts = [["a|b"], ["a", "b"], [""], [None], []]
    table = pl.DataFrame({"uid": list("abcde"), "url": list("uvwxy"), "alt_text": list("tsrqp"), "n": lists,
                          "words": texts, "fixed": pl.Series([[1, None]] * 5, dtype=pl.Array(pl.Int64, 2)),
                          "st": [{"k": 1}, None, {"k": None}, {"k": 2}, {"k": 3}]})
    write_spec({"name": "lists", "source": {"path": "data.parquet"}, "steps": [],
                "outputs": [{"format": "csv", "path": "o.csv"}], "run": {"dir": "run", "report": False}}, table=table)
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    csv = pl.read_csv(workdir / "run" / "o.csv", schema_overrides=dict.fromkeys(["n", "words", "fixed", "st"], pl.Utf8))
    assert [None if cell is None else json.loads(cell) for cell in csv["n"]] == lists
    assert [json.loads(cell) for cell in csv["words"]] == texts
    assert [json.loads(cell) for cell in csv["fixed"]] == [[1, None]] * 5
    assert csv["st"][1] is None and json.loads(csv["st"][2]) == {"k": None}  # a null struct: an empty field


def test_two_uids_that_hash_to_one_number_are_named(write_spec, curate_main, workdir, monkeypatch):
    import curate_basics.sinks

    monkeypatch.setattr(curate_basics.sinks, "_hash64", lambda uid: 7)
    table = pl.DataFrame({"uid": ["a", "b"], "url": ["u", "v"], "alt_text": ["t", "s"]})
    write_spec({"name": "uids", "source": {"path": "data.parquet"}, "steps": [],
                "outputs": [{"format": "uids", "path": "o.npy"}], "run": {"dir": "run", "report": False}}, table=table)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert "uids 'a' and 'b' map to one number in the uid list" in result.stderr


def test_bytes_inside_lists_and_structs_and_durations_are_written_as_text(write_spec, curate_main, workdir):
    """Polars' JSON writer panicked on bytes in a list or struct, and its CSV writer refused durations
    (column-types probe): base64 and ISO 8601 text, wherever they are."""
    import base64
    import datetime as dt
    import json

    table = pl.DataFrame({"uid": ["a", "b"], "url": ["u", "v"], "alt_text": ["t", "s"],
                          "thumbs": [[b"\x00\xff", None], None],
                          "meta": [{"raw": b"xy", "n": 1}, {"raw": None, "n": 2}],
                          "took": [dt.timedelta(milliseconds=1500), None],
                          "laps": [[dt.timedelta(seconds=1)], []]})
    write_spec({"name": "nested", "source": {"path": "data.parquet"}, "steps": [],
                "outputs": [{"format": "jsonl", "path": "o.jsonl"}, {"format": "csv", "path": "o.csv"}],
                "run": {"dir": "run", "report": False}}, table=table)
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    b64 = base64.b64encode(b"\x00\xff").decode()
    lines = [json.loads(line) for line in (workdir / "run" / "o.jsonl").read_text().splitlines()]
    assert lines[0]["thumbs"] == [b64, None] and lines[1]["thumbs"] is None
    assert lines[0]["meta"] == {"raw": base64.b64encode(b"xy").decode(), "n": 1} and lines[1]["meta"]["raw"] is None
    csv = pl.read_csv(workdir / "run" / "o.csv")
    assert json.loads(csv["meta"][1]) == {"raw": None, "n": 2}
    assert json.loads(csv["thumbs"][0]) == [b64, None] and csv["thumbs"][1] is None
    assert csv["took"].to_list() == ["PT1.5S", None] and json.loads(csv["laps"][0]) == ["PT1S"]


def test_a_rust_panic_in_a_plugin_is_its_error_not_a_traceback():
    """Polars' PanicException is a BaseException: it went past every `except Exception`."""
    from curate.errors import reported

    panic = pl.exceptions.PanicException("not yet implemented")
    assert reported(panic) and reported(ValueError()) and not reported(KeyboardInterrupt()) and not reported(SystemExit())
