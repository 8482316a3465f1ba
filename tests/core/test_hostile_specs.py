"""Specs that come from someone else: nothing of a spec runs before `curate run`, SQL stays one
query, keys are not given twice, names and paths stay where they belong, errors say where."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from curate.errors import SpecError
from tests.conftest import sample_table

INJECTED_WHERE = "1) AS _keep FROM input) LIMIT 0; COPY (SELECT 42 AS x) TO '{target}' (HEADER); SELECT (1"


def _filter_spec(where: str, **run) -> dict:
    return {"name": "hostile", "source": {"path": "data.parquet"},
            "steps": [{"step": "filter", "params": {"where": where}}], "run": {"dir": "run", **run}}


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_a_where_with_a_second_statement_is_refused_and_never_runs(curate_main, write_spec, workdir, command):
    target = workdir / "written.csv"
    write_spec(_filter_spec(INJECTED_WHERE.format(target=target)), table=sample_table(10))
    result = curate_main(command, "spec.yaml")
    assert result.code == 2, result
    assert "single SQL expression" in result.stderr
    assert not target.exists()


@pytest.mark.parametrize("query", [
    "SELECT * FROM input; COPY (SELECT 42 AS x) TO '{target}'",
    "COPY (SELECT 42 AS x) TO '{target}'",
])
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_an_sql_step_is_one_select_and_validate_never_runs_it(curate_main, write_spec, workdir, command, query):
    target = workdir / "written.csv"
    write_spec({"name": "hostile", "source": {"path": "data.parquet"},
                "steps": [{"step": "sql", "params": {"query": query.format(target=target)}}],
                "run": {"dir": "run"}}, table=sample_table(10))
    result = curate_main(command, "spec.yaml")
    assert result.code == 2, result
    assert "single query" in result.stderr or "must be a SELECT" in result.stderr
    assert not target.exists()


PASSWD_QUERY = "SELECT uid, url, alt_text, (SELECT count(*) FROM read_csv('/etc/passwd')) AS n FROM input"


@pytest.mark.parametrize("how", ["flag", "spec"])
def test_untrusted_sql_cannot_read_files(curate_main, write_spec, how):
    write_spec({"name": "hostile", "source": {"path": "data.parquet"},
                "steps": [{"step": "sql", "params": {"query": PASSWD_QUERY}}],
                "run": {"dir": "run", **({"untrusted": True} if how == "spec" else {})}}, table=sample_table(10))
    args = ["run", "spec.yaml", "--quiet"] + (["--untrusted"] if how == "flag" else [])
    result = curate_main(*args)
    assert result.code == 2, result
    assert "file system operations are disabled" in result.stderr
    assert "Traceback" not in result.stderr


def test_trusted_sql_may_read_files(curate_main, write_spec, workdir):
    (workdir / "extra.csv").write_text("a\n1\n2\n")
    query = PASSWD_QUERY.replace("/etc/passwd", str(workdir / "extra.csv"))
    write_spec({"name": "trusted", "source": {"path": "data.parquet"},
                "steps": [{"step": "sql", "params": {"query": query}}], "run": {"dir": "run"}}, table=sample_table(10))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0


@pytest.mark.parametrize("per_shard", [False, True])
def test_untrusted_runs_still_read_their_own_shards(curate_main, write_spec, workdir, per_shard):
    write_spec({"name": "locked", "source": {"path": "data.parquet"},
                "steps": [{"step": "sql", "params": {"query": "SELECT * FROM input WHERE score > 0.5",
                                                      "per_shard": per_shard}},
                          {"step": "filter", "params": {"where": "length(url) > 3"}}],
                "outputs": [{"format": "parquet", "path": "out.parquet"}],
                "run": {"dir": "run", "untrusted": True, "shard_size": 4}}, table=sample_table(20))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result
    out = pl.read_parquet(workdir / "run" / "out.parquet")
    assert out.height == (sample_table(20)["score"] > 0.5).sum()


def test_the_untrusted_step_refuses_file_reads_at_run_time_too(tmp_path):
    """Belt and braces: a step whose plan check was skipped still runs locked down."""
    import duckdb

    from curate_basics.sql import Sql

    step = Sql(Sql.Params(query=PASSWD_QUERY, per_shard=True))
    step.untrusted = True
    table = pl.DataFrame({"uid": ["a"], "url": ["u"], "alt_text": ["t"]})
    with pytest.raises(duckdb.PermissionException):
        step.process_shard(table, None)


def test_duplicate_keys_are_refused_with_both_lines(curate_main, write_spec):
    write_spec(
        "name: twice\n"                                   # 1
        "source: {path: data.parquet}\n"                  # 2
        "steps:\n"                                        # 3
        "  - step: filter\n"                              # 4
        "    params: {where: 'score > 0.5'}\n"            # 5
        "run: {dir: run}\n"                               # 6
        "steps:\n"                                        # 7
        "  - step: sample\n"                              # 8
        "    params: {count: 3, count: 4}\n"              # 9
        "run: {dir: run2}\n",                             # 10
        table=sample_table(10),
    )
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "key 'steps' is given twice, on lines 3 and 7" in result.stderr
    assert "key 'run' is given twice, on lines 6 and 10" in result.stderr
    assert "key 'count' is given twice, on lines 9 and 9" in result.stderr


def test_a_non_utf8_spec_is_a_spec_error(curate_main, workdir):
    (workdir / "spec.yaml").write_bytes(b"name: caf\xe9\nsource: {path: data.parquet}\n")
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "not a UTF-8 text file" in result.stderr
    assert "spec.yaml" in result.stderr and "offset 9" in result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("name", ["../../../escape", "a/b", "..", "", "x..y"])
def test_a_name_never_forms_a_path(curate_main, write_spec, workdir, name):
    write_spec({"name": name, "source": {"path": "data.parquet"}, "run": {"dir": "runs/{name}"}},
               table=sample_table(5))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert "name" in result.stderr
    assert not (workdir / "runs").exists() and not (workdir.parent / "escape").exists()


@pytest.mark.parametrize("run_dir", ["../../somewhere", "runs/../../x", "/", "/etc", "/usr/local/x", "~"])
def test_run_dirs_that_escape_or_are_system_directories_are_refused(curate_main, write_spec, run_dir):
    write_spec({"name": "paths", "source": {"path": "data.parquet"}, "run": {"dir": run_dir}},
               table=sample_table(5))
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "run.dir" in result.stderr


@pytest.mark.parametrize("cache_dir", ["../../cache", "/usr/lib/cache"])
def test_cache_dirs_that_escape_or_are_system_directories_are_refused(curate_main, write_spec, cache_dir):
    write_spec({"name": "paths", "source": {"path": "data.parquet"}, "run": {"dir": "run", "cache_dir": cache_dir}},
               table=sample_table(5))
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "run.cache_dir" in result.stderr


def test_run_dir_override_to_a_system_directory_is_refused(curate_main, write_spec):
    write_spec({"name": "paths", "source": {"path": "data.parquet"}}, table=sample_table(5))
    result = curate_main("plan", "spec.yaml", "--run-dir", "/etc")
    assert result.code == 2, result
    assert "system directory" in result.stderr


def test_outputs_stay_in_the_run_directory_unless_absolute(curate_main, write_spec, workdir):
    write_spec({"name": "paths", "source": {"path": "data.parquet"},
                "outputs": [{"format": "csv", "path": "../../x.csv"}], "run": {"dir": "run"}}, table=sample_table(5))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert "outputs[0].path" in result.stderr and "leaves the run directory" in result.stderr
    assert not (workdir.parent / "x.csv").exists()
    absolute = workdir / "elsewhere" / "x.csv"
    write_spec({"name": "paths", "source": {"path": "data.parquet"},
                "outputs": [{"format": "csv", "path": str(absolute)}], "run": {"dir": "run"}}, table=sample_table(5))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    assert absolute.exists()


def test_run_dir_is_relative_to_the_working_directory_as_the_quickstart_expects(curate_main, write_spec, workdir):
    # `curate run specs/quickstart.yaml` from the repository root writes runs/quickstart there.
    write_spec({"name": "quick", "source": {"path": "data.parquet"}}, table=sample_table(5),
               directory=workdir / "specs")
    assert curate_main("run", "specs/spec.yaml", "--quiet").code == 0
    assert (workdir / "runs" / "quick" / "manifest.json").exists()


def test_an_export_output_checks_its_columns_before_any_step_runs(curate_main, write_spec, register_plugin, workdir):
    import curate_export

    register_plugin(curate_export, "export")
    table = pl.DataFrame({"url": ["u1", "u2"], "alt_text": ["a", "b"], "captions": [["a"], ["b"]],
                          "image": [{"shard": "0.tar", "key": "k"}] * 2})
    write_spec({"name": "export", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": "true"}}],
                "outputs": [{"format": "webdataset", "path": "wds"}], "run": {"dir": "run"}}, table=table)
    for command in ("validate", "plan", "run"):
        result = curate_main(command, "spec.yaml")
        assert result.code == 2, result
        assert "reads column 'caption'" in result.stderr and "did you mean 'captions'?" in result.stderr
    assert not (workdir / "run" / "store").exists()


@pytest.mark.parametrize("format", ["parquet", "csv", "jsonl"])
def test_a_table_output_checks_its_columns_before_any_step_runs(curate_main, write_spec, workdir, format):
    write_spec({"name": "columns", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": "true"}}],
                "outputs": [{"format": format, "path": "out", "params": {"columns": ["uid", "urll"]}}],
                "run": {"dir": "run"}}, table=sample_table(5))
    result = curate_main("plan", "spec.yaml")
    assert result.code == 2, result
    assert "reads column 'urll'" in result.stderr and "did you mean 'url'?" in result.stderr


def test_debug_is_accepted_after_the_sub_command(curate_main, write_spec, shout_plugin):
    from curate.cli import main

    write_spec({"name": "d", "source": {"path": "missing.parquet"}})
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2 and "No such option" not in result.stderr
    for argv in (["validate", "spec.yaml", "--debug"], ["run", "spec.yaml", "--debug"], ["--debug", "plan", "spec.yaml"]):
        with pytest.raises(SpecError):  # --debug shows the traceback: the error propagates
            main(argv)


def test_debug_after_a_plugin_command(curate_cli, shout_plugin):
    root = Path(__file__).resolve().parents[2]  # this checkout's curate, not another installed one
    result = curate_cli("hello", "--debug", pythonpath=[shout_plugin, root, root / "plugins"])
    assert result.code == 0, result
    assert "hello from curate-shout" in result.stdout


def test_spec_hash_of_specs_without_untrusted_is_unchanged():
    from curate.spec import load_spec_text

    text = yaml.safe_dump({"name": "h", "source": {"path": "x.parquet"}})
    spec = load_spec_text(text).spec
    assert "untrusted" not in spec.canonical_json()
    spec.run.untrusted = True
    assert "untrusted" in spec.canonical_json()



def test_an_explicit_run_dir_on_the_command_line_may_use_dotdot(curate_main, write_spec, workdir):
    write_spec({"name": "paths", "source": {"path": "data.parquet"}}, table=sample_table(5))
    result = curate_main("plan", "spec.yaml", "--run-dir", "../elsewhere")
    assert result.code == 0, result


def _alias_bomb(levels: int, width: int) -> str:
    """``levels`` anchors, each a list of ``width`` aliases of the one before: width**levels values."""
    lines = ["name: bomb", f"l0: &l0 [{', '.join(['x'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join([*lines, "source: {path: data.parquet}", ""])


@pytest.mark.parametrize("text, fragment", [
    (_alias_bomb(10, 10), "more than 1,000,000 values"),  # 10**10 values in 300 bytes
    ("name: loop\na: &a [1, *a]\nsource: {path: data.parquet}\n", "refers to a value that contains it"),
    ("name: loop\na: &a {b: {c: *a}}\nsource: {path: data.parquet}\n", "refers to a value that contains it"),
    ("name: deep\na: " + "[" * 5000 + "]" * 5000 + "\n", "hundreds of levels deep"),
    ("name: deep\na: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n", "hundreds of levels deep"),
])
@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_yaml_that_expands_without_end_is_refused_before_anything_walks_it(curate_main, write_spec, command,
                                                                           text, fragment):
    write_spec(text, table=sample_table(5))
    result = curate_main(command, "spec.yaml")
    assert result.code == 2, result
    assert fragment in result.stderr and "internal error" not in result.stderr



def test_no_connection_of_curate_fetches_or_loads_an_extension(tmp_path):
    """DuckDB installs and loads a known extension (httpfs…) when a query first needs it: a
    validated spec's read_text('https://…') went to the network. curate turns both off."""
    from curate.duck import connect, default_cursor, shard_connection
    from curate.step import StepContext

    ctx = StepContext.__new__(StepContext)
    ctx.run_dir, ctx.memory_limit = tmp_path, "256MB"
    for con in (connect(), connect(untrusted=True), default_cursor(), shard_connection(), shard_connection(True),
                ctx.duckdb()):
        settings = con.sql("SELECT current_setting('autoinstall_known_extensions'), "
                           "current_setting('autoload_known_extensions')").fetchall()[0]
        assert settings == (False, False)


def test_validating_sql_that_needs_an_extension_says_so_and_fetches_nothing(curate_main, write_spec):
    write_spec(_filter_spec("(SELECT count(*) FROM read_text('https://example.com/')) > 0"), table=sample_table(10))
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "httpfs" in result.stderr and "download" not in result.stderr.lower()


@pytest.mark.parametrize("where", ["output", "run_dir", "cache_dir"])
def test_an_untrusted_spec_writes_only_under_the_working_directory(curate_main, write_spec, workdir, tmp_path_factory,
                                                                   where):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    spec = {"name": "hostile", "source": {"path": "data.parquet"}, "steps": [], "run": {"dir": "run"},
            "outputs": [{"format": "csv", "path": "out.csv"}]}
    if where == "output":
        spec["outputs"] = [{"format": "csv", "path": str(elsewhere / "overwritten.csv")}]
    elif where == "run_dir":
        spec["run"]["dir"] = str(elsewhere / "run")
    else:
        spec["run"]["cache_dir"] = str(elsewhere / "store")
    write_spec(spec, table=sample_table(10))
    assert curate_main("validate", "spec.yaml").code == 0  # the user's own spec may
    for args in (["validate", "spec.yaml", "--untrusted"], ["run", "spec.yaml", "--untrusted", "--quiet"]):
        result = curate_main(*args)
        assert result.code == 2, result
        assert "untrusted" in result.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_trailing_sql_comment_is_part_of_the_sql_not_a_syntax_error(curate_main, write_spec, workdir):
    """The engine wraps a where and a query in parentheses; a trailing '-- comment' swallowed the
    closing one ("syntax error at or near 'true'")."""
    write_spec({"name": "commented", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": "length(alt_text) > 0 -- keep texts"}},
                          {"step": "sql", "params": {"query": "SELECT * FROM input -- everything"}}],
                "run": {"dir": "run"}}, table=sample_table(10))
    assert curate_main("validate", "spec.yaml").code == 0
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 0, result


ENDLESS = "(SELECT count(*) FROM range(100000000) a, range(100000000) b) > 0"


@pytest.mark.parametrize("step", [{"step": "filter", "params": {"where": ENDLESS}},
                                  {"step": "sql", "params": {"query": f"SELECT * FROM input WHERE {ENDLESS}"}},
                                  {"step": "sql", "params": {"query": f"SELECT * FROM input WHERE {ENDLESS}",
                                                             "per_shard": True}}])
def test_a_query_past_its_time_limit_is_stopped_with_a_clear_error(curate_main, write_spec, step):
    """A stranger's cross join of two 1e8-row ranges ran until killed."""
    write_spec({"name": "endless", "source": {"path": "data.parquet"}, "steps": [step],
                "run": {"dir": "run", "sql_timeout": 0.5}}, table=sample_table(10))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert "ran longer than its limit of 0.5 s" in result.stderr and "sql_timeout" in result.stderr


def test_an_untrusted_spec_cannot_lift_the_sql_bound():
    from curate.duck import UNTRUSTED_SQL_SECONDS, sql_seconds

    assert sql_seconds(None, untrusted=False) is None and sql_seconds(5.0, untrusted=False) == 5.0
    assert sql_seconds(None, untrusted=True) == UNTRUSTED_SQL_SECONDS
    assert sql_seconds(10**6, untrusted=True) == UNTRUSTED_SQL_SECONDS and sql_seconds(5.0, untrusted=True) == 5.0


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_a_memory_limit_is_a_size_never_sql(curate_main, write_spec, workdir, command):
    """run.memory_limit was pasted into DuckDB's SET: "256MB'; COPY … TO …; SELECT '1" ran any
    statement with full file access, from an untrusted spec and a resumed run too (security probe)."""
    target = workdir / "written.csv"
    spec = _filter_spec("true", untrusted=True)
    spec["run"]["memory_limit"] = f"256MB'; COPY (SELECT 42 AS x) TO '{target}'; SELECT '1"
    write_spec(spec, table=sample_table(10))
    result = curate_main(command, "spec.yaml")
    assert result.code == 2, result
    assert "run.memory_limit" in result.stderr and "is no size" in result.stderr
    assert not target.exists()


@pytest.mark.parametrize("limit, ok", [("1GB", True), ("512MiB", True), (300_000_000, True), ("1MB", True),
                                       ("0", False), ("lots", False), ("1GB; SELECT 1", False)])
def test_memory_limits_that_are_sizes_run(curate_main, write_spec, limit, ok):
    spec = _filter_spec("true")
    spec["run"]["memory_limit"] = limit
    write_spec(spec, table=sample_table(10))
    result = curate_main("validate", "spec.yaml")
    assert (result.code == 0) is ok, result


def test_the_memory_limit_reaches_duckdb_as_bytes(tmp_path):
    from curate.step import StepContext

    con = StepContext(tmp_path, "s", 0, tmp_path, memory_limit="512MiB").duckdb()
    assert con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0] == "512.0 MiB"

def test_a_metadata_column_the_spec_names_must_exist(curate_main, write_spec, register_plugin, workdir):
    """`metadata: [alt_text, caption_sorce]` dropped the lineage column without a word (blend probe);
    the default metadata columns are still kept only when present."""
    import curate_export

    register_plugin(curate_export, "export")
    table = pl.DataFrame({"url": ["u1", "u2"], "alt_text": ["a", "b"], "caption": ["a", "b"],
                          "caption_source": ["original"] * 2, "image": [{"shard": "0.tar", "key": "k"}] * 2})
    output = {"format": "webdataset", "path": "wds", "params": {"metadata": ["alt_text", "caption_sorce"]}}
    write_spec({"name": "export", "source": {"path": "data.parquet"}, "outputs": [output], "run": {"dir": "run"}},
               table=table)
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "reads column 'caption_sorce'" in result.stderr and "did you mean 'caption_source'?" in result.stderr
    output["params"] = {}
    write_spec({"name": "export", "source": {"path": "data.parquet"}, "outputs": [output], "run": {"dir": "run"}},
               table=table.drop("caption_source"))
    assert curate_main("validate", "spec.yaml").code == 0


@pytest.mark.parametrize("step", [
    {"step": "filter", "params": {"where": "current_setting('temp_directory') IS NOT NULL"}},
    {"step": "sql", "params": {"query": "SELECT *, (SELECT string_agg(value, ';' ORDER BY name) FROM duckdb_settings()) AS s "
                                         "FROM input"}},
    {"step": "sql", "params": {"query": "SELECT input.* FROM input, pragma_database_size()"}},
    {"step": "sql", "params": {"query": "SELECT input.* FROM input, information_schema.tables"}},
])
def test_an_untrusted_specs_sql_may_not_read_the_machines_settings(curate_main, write_spec, workdir, step):
    """duckdb_settings() stays readable with external access off: an untrusted spec copied the run's
    absolute paths, the home directory and the user's name into its output (security probe)."""
    write_spec({"name": "leak", "source": {"path": "data.parquet"}, "steps": [step],
                "outputs": [{"format": "parquet", "path": "out.parquet"}], "run": {"dir": "run", "untrusted": True}},
               table=sample_table(10))
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "DuckDB's settings and catalogs, which hold this machine's paths" in result.stderr
    assert not (workdir / "run").exists()
    spec = yaml.safe_load((workdir / "spec.yaml").read_text())
    spec["run"]["untrusted"] = False  # the user's own spec may
    (workdir / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert "DuckDB's settings" not in curate_main("validate", "spec.yaml").stderr
