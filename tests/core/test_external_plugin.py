"""A plugin installed outside the repo is found through its entry point, like the built-ins."""

from __future__ import annotations

import polars as pl

from tests.conftest import sample_table


def test_the_plugin_is_listed_with_its_version_and_steps(curate_cli, shout_plugin):
    result = curate_cli("plugins", "--json", pythonpath=[shout_plugin])
    assert result.code == 0, result
    plugins = {p["name"]: p for p in result.json()["plugins"]}
    shout = plugins["shout"]
    assert shout["distribution"] == "curate-shout" and shout["version"] == "0.3.1"
    assert shout["module"] == "curate_shout"
    assert set(shout["steps"]) == {"shout", "explode", "needs_missing"}
    assert shout["steps"]["shout"]["params"]["properties"]["suffix"]["default"] == "!"
    assert shout["steps"]["needs_missing"]["extra"] == "absent"
    assert "basics" in plugins

    text = curate_cli("plugins", pythonpath=[shout_plugin])
    assert text.code == 0, text
    assert "shout 0.3.1" in text.stdout
    assert "needs curate[absent]" in text.stdout


def test_the_plugins_step_runs(curate_cli, write_spec, workdir, shout_plugin):
    write_spec({"source": {"path": "data.parquet"},
                "steps": [{"step": "shout", "params": {"suffix": "?!"}}],
                "outputs": [{"format": "parquet", "path": "out.parquet"}],
                "run": {"dir": "run", "shard_size": 7}}, table=sample_table(20))
    result = curate_cli("run", "spec.yaml", "--quiet", pythonpath=[shout_plugin])
    assert result.code == 0, result
    out = pl.read_parquet(workdir / "run" / "out.parquet")
    assert out["shout"].to_list() == [(t or "").upper() + "?!" for t in sample_table(20)["alt_text"]]
    manifest = curate_cli("inspect", "run", "--json", pythonpath=[shout_plugin]).json()
    assert manifest["plugins"]["shout"] == "0.3.1"
    assert manifest["steps"][1]["plugin"] == "shout" and manifest["steps"][1]["plugin_version"] == "0.3.1"


def test_the_plugin_adds_a_command(curate_cli, shout_plugin):
    result = curate_cli("hello", pythonpath=[shout_plugin])
    assert (result.code, result.stdout) == (0, "hello from curate-shout\n"), result
    assert "hello" in curate_cli("--help", pythonpath=[shout_plugin]).stdout


def test_a_plugin_that_raises_on_import_is_a_warning_and_the_cli_still_works(curate_cli, write_spec,
                                                                             shout_plugin, broken_plugin):
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "shout"}]}, table=sample_table(5))
    for args in (["plugins"], ["validate", "spec.yaml"]):
        result = curate_cli(*args, pythonpath=[broken_plugin, shout_plugin])
        assert result.code == 0, result
        assert "curate plugin 'broken' (curate_broken) failed to import and is skipped" in result.stderr
        assert "RuntimeError: curate-broken cannot start: misconfigured" in result.stderr
        assert "Traceback" not in result.stderr
    listing = curate_cli("plugins", "--json", pythonpath=[broken_plugin, shout_plugin]).json()
    assert listing["failed"]["broken"] == "RuntimeError: curate-broken cannot start: misconfigured"


def test_a_step_whose_extra_is_missing_fails_validation_with_the_install_line(curate_cli, write_spec,
                                                                              shout_plugin):
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "needs_missing"}]}, table=sample_table(5))
    result = curate_cli("validate", "spec.yaml", pythonpath=[shout_plugin])
    assert result.code == 2, result
    assert ("spec.yaml:4: steps[0].step: step 'needs_missing' needs curate_test_absent_module, not installed "
            "(run: pip install 'curate[absent]')") in result.stderr
    assert "Traceback" not in result.stderr


def test_without_the_plugin_its_step_is_unknown(curate_cli, write_spec):
    write_spec({"source": {"path": "data.parquet"}, "steps": [{"step": "shout"}]}, table=sample_table(5))
    result = curate_cli("validate", "spec.yaml")
    assert result.code == 2
    assert "unknown step 'shout'" in result.stderr
