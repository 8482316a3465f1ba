"""A plugin author's common mistakes end in an error naming the step, the shard and the mistake,
never in "internal error … please report it" and never in output quietly different from what the
step returned: a missing ``return``, a LazyFrame, a table step that returns instead of yielding,
a drop reason that is a number or empty, a column written but not declared, a value that does not
fit the declared type. Each through ``curate.testing.run_step`` (the engine's shard and table
code) and, for shard steps, fused in a real run."""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl
import pytest

from curate import Step, hookimpl
from curate.errors import StepError
from curate.schema import DROP_REASON
from curate.testing import run_step
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)

TABLE = pl.DataFrame({"uid": ["a", "b", "c"], "url": ["u1", "u2", "u3"], "alt_text": ["x", "yy", "zzz"]})


def shard_step(name: str, body, writes: dict | None = None) -> type[Step]:
    return type(name, (Step,), {"name": name, "writes": writes or {}, "thread_safe": True,
                                "process_shard": lambda self, table, ctx: body(table)})


SHARD_MISTAKES = [
    (shard_step("no_return", lambda t: None), r"process_shard\(\) returned None, not a polars DataFrame \(a missing return\?\)"),
    (shard_step("lazy", lambda t: t.lazy()), r"process_shard\(\) returned a LazyFrame: collect it"),
    (shard_step("a_dict", lambda t: t.to_dict()), r"process_shard\(\) returned dict, not a polars DataFrame"),
    (shard_step("number_reason", lambda t: t.with_columns(pl.lit(1).alias(DROP_REASON))),
     r"its '_drop_reason' column is Int32: it must be text"),
    (shard_step("empty_reason", lambda t: t.with_columns(pl.lit("").alias(DROP_REASON))),
     r"3 rows have an empty '_drop_reason'"),
    (shard_step("undeclared", lambda t: t.with_columns(pl.col("alt_text").str.len_chars().alias("alt_len"))),
     r"column 'alt_len' holds values but is not among the step's declared columns"),
    (shard_step("drops_url", lambda t: t.drop("url")),
     r"input column 'url' is missing from the output \(a step that removes columns says so in output_schema\(\)"),
    (shard_step("too_big", lambda t: t.with_columns(pl.lit(2**64 - 1, pl.UInt64).alias("n")), {"n": pl.Int64}),
     r"column 'n' \(UInt64 → Int64\) holds values that do not fit the planned type"),
]


@pytest.mark.parametrize(("cls", "message"), SHARD_MISTAKES, ids=[c.name for c, _ in SHARD_MISTAKES])
def test_a_shard_steps_mistake_is_a_step_error_naming_it(cls, message):
    with pytest.raises(StepError, match=message) as raised:
        run_step(cls, TABLE)
    assert raised.value.step_label == cls.name and raised.value.shard == 0
    assert raised.value.hint == "this is a bug in the step's plugin"


def _panics(table: pl.DataFrame) -> pl.DataFrame:
    raise pl.exceptions.PanicException("not yet implemented: Writing BinaryView to JSON")


def test_a_rust_panic_in_a_step_is_a_step_error_naming_it():
    """Polars' PanicException is a BaseException: it went past `except Exception` as a bare traceback."""
    with pytest.raises(StepError, match="PanicException: not yet implemented") as raised:
        run_step(shard_step("panics", _panics), TABLE)
    assert raised.value.step_label == "panics" and raised.value.shard == 0


def test_what_a_step_may_return_is_still_taken():
    """Null reasons on kept rows, a narrower integer than declared (widened), and input columns
    left null on kept rows (sql per_shard's diagonal concat) all pass as before."""
    def body(table: pl.DataFrame) -> pl.DataFrame:
        reason = pl.when(pl.col("alt_text") == "x").then(pl.lit("short")).otherwise(None)
        extra = pl.when(pl.col("alt_text") == "x").then(pl.lit("kept only on the dropped row"))
        return table.with_columns(pl.col("alt_text").str.len_chars().cast(pl.UInt8).alias("n"),
                                  reason.alias(DROP_REASON), extra.alias("left_over"))

    result = run_step(shard_step("fine", body, {"n": pl.Int64}), TABLE)
    assert result.kept["n"].to_list() == [2, 3] and result.kept.schema["n"] == pl.Int64
    assert "left_over" not in result.kept.columns
    assert result.dropped[DROP_REASON].to_list() == ["short"]


class ReturnsAFrame(Step):
    name = "returns_a_frame"
    scope: ClassVar[str] = "table"

    def process_table(self, table, ctx) -> Any:
        return table.scan().collect()


class ReturnsNothing(Step):
    name = "returns_nothing"
    scope: ClassVar[str] = "table"

    def process_table(self, table, ctx) -> Any:
        table.scan().collect()


class YieldsLazy(Step):
    name = "yields_lazy"
    scope: ClassVar[str] = "table"

    def process_table(self, table, ctx) -> Any:
        yield table.scan()


@pytest.mark.parametrize(("cls", "message"), [
    (ReturnsAFrame, r"process_table\(\) returned a DataFrame: it must yield the step's frames"),
    (ReturnsNothing, r"process_table\(\) returned None: it must yield"),
    (YieldsLazy, r"process_table\(\) returned a LazyFrame: collect it"),
])
def test_a_table_steps_mistake_is_a_step_error_naming_it(cls, message):
    with pytest.raises(StepError, match=message) as raised:
        run_step(cls, TABLE)
    assert raised.value.step_label == cls.name


class Counts(Step):
    name = "counts"
    thread_safe = True

    def setup(self, ctx) -> None:
        self.rows = 0

    def process_shard(self, table, ctx) -> pl.DataFrame:
        self.rows += table.height
        return table

    def summary(self, ctx) -> dict:
        return {"rows": self.rows}


def test_run_step_asks_a_shard_step_for_its_summary_as_the_engine_does():
    assert run_step(Counts, TABLE, shard_size=2).summary == {"rows": 3}


class MistakesPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [cls for cls, _ in SHARD_MISTAKES]


@pytest.mark.parametrize("fuse", [True, False])
def test_in_a_run_fused_or_not_the_mistake_is_said_and_nothing_is_written(curate_main, write_spec, workdir,
                                                                          register_plugin, fuse):
    register_plugin(MistakesPlugin(), "mistakes")
    write_spec({"name": "m", "source": {"path": "data.parquet"},
                "steps": [{"step": "normalize_text"}, {"step": "undeclared"}],
                "outputs": [{"format": "parquet", "path": "out.parquet"}],
                "run": {"dir": "run", "report": False, "fuse": fuse}}, table=TABLE.drop("uid"))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1, result
    assert "step 'undeclared', shard 0 failed: column 'alt_len' holds values" in result.stderr
    assert "hint: this is a bug in plugin 'mistakes' 0.1 (its step 'undeclared')" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not (workdir / "run" / "out.parquet").exists()


# -- run-event hooks, sinks, registration -------------------------------------------------------

class Told:
    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def curate_step_finished(self, record):
        self.events.append(record["label"])

    @hookimpl
    def curate_run_finished(self, manifest):
        self.events.append(manifest["status"])


class Raises:
    @hookimpl
    def curate_run_started(self, run_dir):
        raise RuntimeError("started broke")

    @hookimpl
    def curate_step_finished(self, record):
        raise KeyError(record["label"])

    @hookimpl
    def curate_run_finished(self, manifest):
        raise RuntimeError("finished broke")


def test_a_run_event_hook_that_raises_is_named_and_the_run_and_the_others_go_on(curate_main, write_spec,
                                                                                 workdir, register_plugin):
    told = register_plugin(Told(), "told")
    register_plugin(Raises(), "raises")
    write_spec({"name": "h", "source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}],
                "outputs": [{"format": "parquet", "path": "out.parquet"}], "run": {"dir": "run", "report": False}},
               table=TABLE.drop("uid"))
    with pytest.warns(Warning) as warned:
        result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    said = "\n".join(str(w.message) for w in warned)
    for hook in ("curate_run_started", "curate_step_finished", "curate_run_finished"):
        assert f"curate plugin 'raises' failed in its {hook} hook, and the run goes on" in said, hook
    assert "internal error" not in result.stderr and (workdir / "run" / "out.parquet").exists()
    assert told.events == ["source", "normalize_text", "complete"]


def sink_plugin(write) -> Any:
    from curate.sink import Sink

    class Broken(Sink):
        format = "broken"
        path_kind = "file"

    Broken.write = write

    class Plugin:
        @hookimpl
        def curate_register_sinks(self):
            return [Broken]

    return Plugin()


def _raise_os(self, table):
    raise PermissionError(13, "Permission denied")


def _raise_bug(self, table):
    raise ValueError("off by one")


@pytest.mark.parametrize(("write", "message", "hint"), [
    (_raise_os, r"output 'out.txt' \(broken\) failed: PermissionError: \[Errno 13\] Permission denied",
     "can be written (a folder there, its permissions)"),
    (_raise_bug, r"output 'out.txt' \(broken\) failed: ValueError: off by one",
     "this is a bug in plugin 'sinks' (its 'broken' sink)"),
    (lambda self, table: 5, r"the 'broken' sink's write\(\) returned int, not a dict of facts",
     "this is a bug in plugin 'sinks'"),
    (lambda self, table: None, r"the 'broken' sink returned without writing its file", "this is a bug in plugin 'sinks'"),
])
def test_a_sink_that_fails_is_named_with_its_plugin(curate_main, write_spec, workdir, register_plugin,
                                                     write, message, hint):
    import re

    register_plugin(sink_plugin(write), "sinks")
    write_spec({"name": "s", "source": {"path": "data.parquet"}, "steps": [],
                "outputs": [{"format": "broken", "path": "out.txt"}], "run": {"dir": "run", "report": False}},
               table=TABLE.drop("uid"))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1, result
    assert re.search(message, result.stderr) and hint in result.stderr, result.stderr
    assert "internal error" not in result.stderr


class ClassPlugin:
    @hookimpl
    def curate_register_steps(self):
        return []


def test_a_plugin_class_in_place_of_an_instance_is_refused_with_the_fix(pm):
    from curate.errors import PluginError

    with pytest.raises(PluginError, match=r"plugin 'cls' is the class ClassPlugin, whose hooks "
                                          r"\(curate_register_steps\) are methods needing an instance") as raised:
        pm.register(ClassPlugin, name="cls")
    assert "plugin = ClassPlugin()" in raised.value.hint
    pm.register(ClassPlugin(), name="cls")  # an instance is fine


class NotCurateParams(Step):
    name = "not_curate_params"

    class Params(__import__("pydantic").BaseModel):
        n: int = 1

    def process_shard(self, table, ctx):
        return table


class BadDefault(Step):
    name = "bad_default"

    class Params(__import__("curate").Params):
        min_words: int = __import__("pydantic").Field(-1, ge=0)

    def process_shard(self, table, ctx):
        return table


class ParamsPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [NotCurateParams, BadDefault]


class FailingPlugin:
    @hookimpl
    def curate_register_steps(self):
        raise ImportError("no module named 'mylib'")


def test_params_mistakes_are_the_plugins_and_a_failed_plugin_is_named_beside_an_unknown_step(
        curate_main, write_spec, workdir, register_plugin):
    register_plugin(ParamsPlugin(), "params")
    register_plugin(FailingPlugin(), "failing")
    write_spec({"name": "p", "source": {"path": "data.parquet"},
                "steps": [{"step": "not_curate_params"}, {"step": "bad_default"}, {"step": "from_failing"}]},
               table=TABLE.drop("uid"))
    with pytest.warns(Warning, match="curate plugin 'failing' failed in its curate_register_steps hook"):
        result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "NotCurateParams.Params is not a curate.Params" in result.stderr
    assert "its Params class must subclass curate.Params" in result.stderr
    assert "steps[1].params.min_words: must be ≥ 0, got -1" in result.stderr
    assert "the spec does not set 'min_words': its default in BadDefault.Params is not valid" in result.stderr
    assert "unknown step 'from_failing'" in result.stderr
    assert "plugin 'failing' failed to load" in result.stderr
    assert "internal error" not in result.stderr


def test_a_table_strategy_whose_column_polars_cannot_hold_says_how_to_bound_it():
    from hypothesis import Phase, given, settings
    from hypothesis import strategies as st

    from curate.testing import strategies as cst

    @settings(max_examples=5, database=None, phases=[Phase.generate])  # no shrinking: the first draw fails
    @given(cst.tables(min_rows=1, extra_columns={"n": st.just(2**70)}, extra_dtypes={"n": pl.Int64}))
    def drawn(table):
        pass

    with pytest.raises(ValueError, match=r"tables\(\): extra column 'n' drew values polars cannot hold"):
        drawn()


class Boom(Step):
    name = "boom"

    def process_shard(self, table, ctx):
        raise ValueError("division by zero somewhere")


class BoomPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [Boom]


def test_a_steps_exception_names_the_plugin_and_its_version(curate_main, write_spec, workdir, register_plugin):
    register_plugin(BoomPlugin(), "boomer", version="2.3")
    write_spec({"name": "b", "source": {"path": "data.parquet"}, "steps": [{"step": "boom"}],
                "run": {"dir": "run", "report": False}}, table=TABLE.drop("uid"))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 1, result
    assert "step 'boom', shard 0 failed: ValueError: division by zero somewhere" in result.stderr
    assert "hint: raised in plugin 'boomer' 2.3 (its step 'boom')" in result.stderr
