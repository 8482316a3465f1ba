"""The ``curate`` command as a user runs it: in a subprocess, judged by exit code and output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import Field

from curate.hookspecs import hookimpl
from curate.params import StepParams
from curate.step import Step
from tests.conftest import cli_env, sample_table
from tests.core.test_spec import FIVE_MISTAKES

HEAVY = ("torch", "open_clip", "faiss", "transformers", "ray", "fsspec", "s3fs", "botocore", "boto3", "aiobotocore")


@pytest.fixture
def ran(curate_main, write_spec, workdir):
    """A finished run in ``workdir/run``."""
    write_spec({"name": "cli", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": "score > 0.5"}}, {"step": "sample",
                                                                                   "params": {"count": 5}}],
                "outputs": [{"format": "csv", "path": "out.csv"}],
                "run": {"dir": "run", "shard_size": 8}}, table=sample_table(40))
    result = curate_main("run", "spec.yaml")
    assert result.code == 0, result
    return result


def test_help_and_import_do_not_import_heavy_libraries(tmp_path):
    # Importable stand-ins, so an import would succeed and show in sys.modules even where the
    # real libraries are not installed.
    fakes = tmp_path / "fakes"
    for name in HEAVY:
        (fakes / name).mkdir(parents=True)
        (fakes / name / "__init__.py").write_text("")
    probe = (
        "import json, sys\n"
        "import curate\n"
        "from curate.cli import main\n"
        "code = main(['--help'])\n"
        f"print(json.dumps([code, sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env([fakes]), capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    code, imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert (code, imported) == (0, [])
    assert "validate" in result.stdout and "inspect" in result.stdout


# What every command but --help and `curate plugins` needs anyway: ~0.3 s of CPU that `curate
# --help` spent when `from curate import hookimpl` loaded the whole core and a plugin's CLI module
# imported numpy at the top.
TABLE_LIBRARIES = ("numpy", "polars", "pyarrow", "duckdb")


def test_help_does_not_import_table_libraries():
    probe = (
        "import json, sys\n"
        "from curate.cli import main\n"
        "code = main(['--help'])\n"
        f"print(json.dumps([code, sorted(m for m in sys.modules if m.split('.')[0] in {TABLE_LIBRARIES!r})]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env([]), capture_output=True, text=True, check=False,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    code, imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert (code, imported) == (0, [])
    assert "clip" in result.stdout and "world" in result.stdout  # the plugins' commands are listed


def test_python_dash_m_curate_is_the_curate_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "curate", "--help"], env=cli_env([]), capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: curate" in result.stdout and "validate" in result.stdout


def test_validate_reports_every_problem_and_exits_2_without_a_traceback(curate_cli, write_spec):
    write_spec(FIVE_MISTAKES, table=sample_table())
    result = curate_cli("validate", "spec.yaml")
    assert result.code == 2, result
    # (Other installed plugins may warn first; the error block is what matters.)
    assert "error: 7 problems in spec.yaml:\n" in result.stderr
    for fragment in ("spec.yaml:5: steps[0].step: unknown step 'filtr' (did you mean 'filter'?)",
                     "spec.yaml:8: steps[1].params.fraction: must be ≤ 1, got 28",
                     "spec.yaml:10: steps[2].params.colums: unknown key (did you mean 'columns'?)",
                     "spec.yaml:11: steps[3].step: step 'exact_dedup' reads column 'alt_txt'",
                     "spec.yaml:13: steps[4].step: unknown step 'clip_scor'",
                     "spec.yaml:17: outputs[0].step: no step labelled 'dedupe'",
                     "spec.yaml:19: run.shard_sise: unknown key (did you mean 'shard_size'?)"):
        assert fragment in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_ok(curate_main, write_spec):
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}]}, table=sample_table())
    result = curate_main("validate", "spec.yaml")
    assert (result.code, result.stdout) == (0, "ok spec.yaml: source 'auto', 1 step, 0 outputs\n"), result


@pytest.mark.parametrize("args, message", [
    (["validate", "missing.yaml"], "spec file not found"),
    (["run"], "curate run needs a SPEC"),
    (["inspect", "."], "is not a curate run directory"),
    (["frobnicate"], "No such command 'frobnicate'"),
    (["validate"], "Missing argument 'SPEC'"),
])
def test_usage_errors_exit_2(curate_main, args, message):
    result = curate_main(*args)
    assert result.code == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("setup, message", [
    ("missing", "source.path 'data.parquet' does not exist"),
    ("corrupt", "cannot read"),
    ("unmapped", "the source has no 'alt_text' column"),
    ("semicolons", "looks separated by ';'"),
])
def test_bad_input_is_a_clear_error_not_a_traceback(curate_main, write_spec, workdir, setup, message):
    write_spec({"source": {"path": "data.parquet" if setup != "semicolons" else "data.csv"}})
    if setup == "corrupt":
        (workdir / "data.parquet").write_bytes(b"PAR1" + b"\x01" * 64)
    elif setup == "unmapped":
        sample_table().rename({"alt_text": "caption"}).write_parquet(workdir / "data.parquet")
    elif setup == "semicolons":
        sample_table().write_csv(workdir / "data.csv", separator=";")
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_step_failing_at_run_time_exits_1_naming_step_and_shard(curate_cli, write_spec, workdir, shout_plugin):
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "explode"}], "run": {"shard_size": 5,
                                                                                          "dir": "run"}},
               table=sample_table(20))
    result = curate_cli("run", "spec.yaml", "--quiet", pythonpath=[shout_plugin])
    assert result.code == 1, result
    assert "error: step 'explode', shard 1 failed: RuntimeError: the plugin has a bug" in result.stderr
    assert "Traceback" not in result.stderr
    debug = curate_cli("--debug", "run", "spec.yaml", "--quiet", pythonpath=[shout_plugin])
    assert debug.code == 1 and "Traceback" in debug.stderr
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "the plugin has a bug" in manifest["error"]


def test_run_prints_the_funnel_and_inspect_shows_it_again(ran, curate_main, workdir):
    assert "wrote csv" in ran.stderr and "curate.duckdb" in ran.stderr
    result = curate_main("inspect", "run")
    assert result.code == 0, result
    for fragment in ("cli — complete", "│ filter ", "│ sample ", "filter: ", "spec hash"):
        assert fragment in result.stdout
    manifest = curate_main("inspect", "run", "--json").json()
    assert manifest["steps"][-1]["rows_out"] == 5
    added = ("damaged", "verified", "lock_held", "state")  # inspect's own judgements beside the manifest
    assert {k: v for k, v in manifest.items() if k not in added} == \
        json.loads((workdir / "run" / "manifest.json").read_text())


def test_plan_json_says_what_runs_and_what_is_cached(ran, curate_main):
    result = curate_main("plan", "spec.yaml", "--json")
    assert result.code == 0, result
    plan = result.json()
    assert plan["run_dir"].endswith("run")
    assert [(s["label"], s["cached"]) for s in plan["steps"]] == [("source", True), ("filter", True),
                                                                   ("sample", True)]
    assert plan["steps"][1]["reads"] == {} and plan["steps"][0]["writes"]["alt_text"] == "String"
    human = curate_main("plan", "spec.yaml")
    assert human.code == 0 and "output 0: csv ← sample → out.csv" in human.stdout


def test_run_from_recomputes_and_resume_reuses(ran, curate_main):
    again = curate_main("run", "spec.yaml", "--quiet", "--from", "sample")
    assert again.code == 0, again
    manifest = curate_main("inspect", "run", "--json").json()
    assert [r["cached"] for r in manifest["steps"]] == [True, True, False]
    resumed = curate_main("run", "--resume", "run", "--quiet")
    assert resumed.code == 0, resumed
    assert all(r["cached"] for r in curate_main("inspect", "run", "--json").json()["steps"])
    unknown = curate_main("run", "spec.yaml", "--from", "smaple")
    assert unknown.code == 2 and "did you mean 'sample'?" in unknown.stderr


def test_plugins_json_lists_the_built_ins(curate_main):
    result = curate_main("plugins", "--json")
    assert result.code == 0, result
    basics = next(p for p in result.json()["plugins"] if p["name"] == "basics")
    assert set(basics["steps"]) >= {"sql", "filter", "sample", "select", "rename", "normalize_text", "exact_dedup"}
    assert set(basics["executors"]) == {"local"}
    fraction = basics["steps"]["sample"]["params"]["properties"]["fraction"]
    assert {"type": "number", "exclusiveMinimum": 0, "maximum": 1} in fraction["anyOf"]
    assert basics["version"] and basics["distribution"] == "curate"


def test_plugins_lists_steps_and_their_params(curate_main):
    result = curate_main("plugins")
    assert result.code == 0, result
    assert "step     sample: seeded sample by fraction or count" in result.stdout
    assert "params: fraction=None, count=None, by=None, seed=None" in result.stdout


class Tagged(Step):
    name = "tagged"

    class Params(StepParams):
        tags: list[str] = Field(default_factory=lambda: ["alt_text", "caption"])
        options: dict[str, float] = Field(default_factory=dict)
        where: str


class TaggedPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [Tagged]


def test_plugins_shows_defaults_made_by_a_factory_and_no_default_only_where_required(curate_main, register_plugin):
    # A list or dict default is written with default_factory; listed without it, an optional param
    # read as a required one (the export sinks' `metadata`, the mix step's `options`).
    register_plugin(TaggedPlugin(), "tagged")
    result = curate_main("plugins")
    assert result.code == 0, result
    assert "params: tags=['alt_text', 'caption'], options={}, where\n" in result.stdout
    listed = next(p for p in curate_main("plugins", "--json").json()["plugins"] if p["name"] == "tagged")
    properties = listed["steps"]["tagged"]["params"]["properties"]
    assert properties["tags"]["default"] == ["alt_text", "caption"] and properties["options"]["default"] == {}
    assert "default" not in properties["where"]


class Interrupted(Step):
    name = "interrupted"

    def process_shard(self, table, ctx):
        if ctx.shard == 1:
            raise KeyboardInterrupt
        return table


class InterruptedPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [Interrupted]


def test_ctrl_c_exits_130_marks_the_run_interrupted_and_keeps_finished_shards(curate_main, register_plugin, write_spec,
                                                                       workdir):
    register_plugin(InterruptedPlugin(), "interrupted")
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "interrupted"}],
                "run": {"dir": "run", "shard_size": 5}}, table=sample_table(20))
    result = curate_main("run", "spec.yaml", "--quiet")
    assert result.code == 130, result
    assert "interrupted; run the same command again to resume" in result.stderr
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    markers = list((workdir / "run" / "store").glob("*/shards/00000.json"))
    assert len(markers) == 1


@pytest.mark.parametrize("flags", [("--no-cache",), ("--from", "interrupted")])
def test_ctrl_c_after_no_cache_or_from_says_how_to_resume_not_to_run_the_same_command(
        curate_main, register_plugin, write_spec, workdir, flags):
    # The same command would recompute every step (--no-cache) or the steps from --from again,
    # finished shards included (automation probe): the hint names --resume RUN_DIR instead.
    register_plugin(InterruptedPlugin(), "interrupted")
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "interrupted"}],
                "run": {"dir": "run", "shard_size": 5}}, table=sample_table(20))
    result = curate_main("run", "spec.yaml", "--quiet", *flags)
    assert result.code == 130, result
    assert f"interrupted; run `curate run --resume {workdir / 'run'}` to resume (the same command would " \
           f"recompute with {' '.join(flags)} what this run finished)" in result.stderr
    assert "run the same command again" not in result.stderr


def test_resume_works_from_another_directory(ran, curate_main, workdir, monkeypatch):
    monkeypatch.chdir(workdir.parent)
    resumed = curate_main("run", "--resume", "work/run", "--quiet")
    assert resumed.code == 0, resumed
    manifest = json.loads((workdir / "run" / "manifest.json").read_text())
    assert all(r["cached"] for r in manifest["steps"])
    assert manifest["spec_path"] == str(workdir / "spec.yaml")


def test_inspect_in_a_narrow_terminal_folds_drop_reasons_never_cuts_them(curate_main, write_spec, monkeypatch):
    write_spec({"name": "narrow", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "name": "a_rather_long_step_label",
                           "params": {"where": "score > 0.5", "reason": "failed_to_download_after_retries"}},
                          {"step": "sample", "params": {"fraction": 0.5}}],
                "run": {"dir": "run", "report": False}}, table=sample_table(40))
    assert curate_main("run", "spec.yaml", "--quiet").code == 0
    monkeypatch.setenv("COLUMNS", "80")
    shown = curate_main("inspect", "run").stdout
    assert "…" not in shown
    cells = "".join(line.split("│")[5].strip() for line in shown.splitlines() if line.count("│") > 6)
    assert "failed_to_download_after_retries:" in cells and "sample:" in cells


def test_validate_takes_run_dir_as_its_hint_for_an_untrusted_spec_says(curate_main, write_spec, tmp_path):
    write_spec({"name": "u", "source": {"path": "data.parquet"}, "steps": [],
                "run": {"dir": str(tmp_path / "elsewhere")}}, table=sample_table(5))
    refused = curate_main("validate", "spec.yaml", "--untrusted")
    assert refused.code == 2 and "choose the directory yourself with --run-dir" in refused.stderr
    assert curate_main("validate", "spec.yaml", "--untrusted", "--run-dir", "runs/u").code == 0


def test_a_column_name_holding_a_character_that_does_not_show_is_named_with_it(curate_main, write_spec, workdir):
    """A header 'alt_text' + U+200B (a page's hidden character pasted into a spreadsheet): quoted raw,
    the message said "source columns: url, alt_text" and "did you mean 'alt_text'?"."""
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "normalize_text"}]})
    sample_table().rename({"alt_text": "alt_text\u200b"}).write_parquet(workdir / "data.parquet")
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "source columns: url, alt_text\\u200b" in result.stderr, result.stderr
