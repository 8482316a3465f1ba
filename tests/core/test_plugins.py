from __future__ import annotations

import importlib.metadata
import inspect
from pathlib import Path

import curate_basics
import pytest
from curate_clip import hookspecs as clip_hookspecs
from curate_mix import hookspecs as mix_hookspecs

from curate import hookspecs
from curate.errors import PluginError
from curate.hookspecs import hookimpl
from curate.plugins import ENTRY_POINT_GROUP, PluginLoadWarning, PluginManager
from curate.step import Step
from curate.testing import run_spec
from tests.conftest import REPO, sample_table
from tests.core.conftest import curate_main  # noqa: F401  (the CLI in this process)


class OnlyHere(Step):
    name = "only_here"


class OnlyHerePlugin:
    @hookimpl
    def curate_register_steps(self):
        return [OnlyHere]


def test_a_plugin_registered_in_one_test(pm, register_plugin):
    register_plugin(OnlyHerePlugin(), "only_here_plugin")
    assert pm.steps.get("only_here") is OnlyHere
    assert pm.steps.owners["only_here"] == "only_here_plugin"


def test_is_gone_in_the_next(pm):
    assert pm.steps.get("only_here") is None
    assert "only_here_plugin" not in pm.infos


def test_unregistering_removes_what_the_plugin_provided(pm):
    pm.register(OnlyHerePlugin(), name="temporary")
    assert "only_here" in pm.steps.names()
    pm.unregister("temporary")
    assert "only_here" not in pm.steps.names()


class Impostor(Step):
    name = "filter"


class ImpostorPlugin:
    @hookimpl
    def curate_register_steps(self):
        return [Impostor]


def test_two_plugins_claiming_one_step_name_is_an_error_naming_both(pm, register_plugin):
    register_plugin(ImpostorPlugin(), "impostor")
    with pytest.raises(PluginError, match="'filter' is provided by both plugin '(basics|impostor)' and plugin "
                                          "'(impostor|basics)'"):
        pm.steps.get("filter")
    # the other names, and listing, still work: only using the claimed name is refused
    assert pm.steps.get("sample") is not None and "filter" in pm.steps.names()
    assert sorted(pm.steps.clashes["filter"]) == ["basics", "impostor"]


def test_a_clash_is_listed_by_curate_plugins_and_refused_where_a_spec_uses_it(pm, register_plugin, curate_main,
                                                                               write_spec):
    register_plugin(ImpostorPlugin(), "impostor")
    listed = curate_main("plugins")
    assert listed.code == 0, listed
    assert "clash step 'filter' is provided by both plugin" in listed.stdout and "sample" in listed.stdout
    write_spec({"name": "c", "source": {"path": "data.parquet"},
                "steps": [{"step": "sample", "params": {"fraction": 0.5}}]}, table=sample_table())
    assert curate_main("validate", "spec.yaml").code == 0
    write_spec({"name": "c", "source": {"path": "data.parquet"},
                "steps": [{"step": "filter", "params": {"where": "true"}}]}, table=sample_table())
    result = curate_main("validate", "spec.yaml")
    assert result.code == 2, result
    assert "steps[0].step: step 'filter' is provided by both plugin" in result.stderr
    assert "uninstall one of them" in result.stderr


def test_a_step_class_without_a_name_is_an_error_naming_the_plugin(pm, register_plugin):
    class Nameless(Step):
        pass

    class NamelessPlugin:
        @hookimpl
        def curate_register_steps(self):
            return [Nameless]

    register_plugin(NamelessPlugin(), "nameless")
    with pytest.raises(PluginError, match="plugin 'nameless' registered .*Nameless.* without a 'name'"):
        pm.steps  # noqa: B018


def _only_entry_points(monkeypatch, *entry_points):
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: list(entry_points) if group == ENTRY_POINT_GROUP else [])


def test_built_in_steps_are_discovered_through_the_entry_point_group(monkeypatch):
    (basics,) = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == "basics"]
    _only_entry_points(monkeypatch, basics)
    manager = PluginManager()
    assert manager.infos["basics"].distribution == "curate"
    assert manager.infos["basics"].module == "curate_basics"
    assert manager.plugin_versions() == {"basics": importlib.metadata.version("curate")}
    assert {"sql", "filter", "sample", "select", "rename", "normalize_text", "exact_dedup"} <= set(manager.steps.names())
    assert {"parquet", "csv", "tsv", "jsonl", "auto"} <= set(manager.sources.names())
    assert manager.version_of("step", "filter") == importlib.metadata.version("curate")


def test_a_plugin_that_fails_to_import_is_a_warning_naming_it(monkeypatch):
    (basics,) = [e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == "basics"]
    broken = importlib.metadata.EntryPoint(name="broken", value="curate_test_no_such_plugin", group=ENTRY_POINT_GROUP)
    _only_entry_points(monkeypatch, broken, basics)
    with pytest.warns(PluginLoadWarning, match="curate plugin 'broken' .* failed to import and is skipped: "
                                               "ModuleNotFoundError"):
        manager = PluginManager()
    assert "broken" in manager.failed
    assert "filter" in manager.steps.names()  # the others still work


def test_tracing_prints_every_hook_call(monkeypatch, capsys):
    monkeypatch.setenv("CURATE_TRACE_PLUGINS", "1")
    manager = PluginManager(load_entry_points=False)
    manager.register(curate_basics, name="basics")
    manager.hook.curate_run_started(run_dir=Path("."), spec=None)
    assert "curate_run_started" in capsys.readouterr().err


# -- the hooks: documented, typed, and each one exercised ---------------------------------------
HOOK_MODULES = [hookspecs, mix_hookspecs, clip_hookspecs]  # the core's, and those plugins add (curate_add_hookspecs)
HOOKS = {
    name: function for module in HOOK_MODULES for name, function in inspect.getmembers(module, inspect.isfunction)
    if name.startswith("curate_")
}

# Where each hook is exercised; a new hook fails the meta-test below until it is listed here.
EXERCISED = {
    "curate_add_hookspecs": "test_a_plugin_adds_its_own_hook, and curate_mix adds curate_mix_strategies",
    "curate_register_steps": "every test (the basics plugin), test_a_plugin_registered_in_one_test",
    "curate_register_sources": "tests/basics/test_sources.py",
    "curate_register_sinks": "tests/basics/test_sinks.py",
    "curate_register_executors": "tests/basics/test_local.py",
    "curate_register_commands": "tests/core/test_external_plugin.py (a plugin adds `curate hello`)",
    "curate_run_started": "test_run_hooks_are_called_with_keywords_a_subset_is_enough",
    "curate_step_finished": "test_run_hooks_are_called_with_keywords_a_subset_is_enough",
    "curate_run_finished": "test_run_hooks_are_called_with_keywords_a_subset_is_enough",
    "curate_report_sections": "called by plugins/curate_report (page.py); tested there",
    "curate_mix_strategies": "tests/mix/test_mix.py (a plugin adds a strategy; built-ins register the same way)",
    "curate_clip_vocabularies": "tests/clip/test_edits.py (curate_clip's and curate_world's vocabularies)",
}


def test_every_hook_is_documented_typed_and_exercised():
    assert set(HOOKS) == set(EXERCISED)
    for name, function in HOOKS.items():
        doc = inspect.getdoc(function) or ""
        assert any(phrase in doc for phrase in ("concatenated", "first non-None", "Return value ignored",
                                                "Called ", "Add sub-commands")), f"{name}: no return contract"
        signature = inspect.signature(function)
        assert signature.return_annotation is not inspect.Signature.empty, name
        for parameter in signature.parameters.values():
            assert parameter.annotation is not inspect.Parameter.empty, f"{name}({parameter.name})"
    assert "curate_report_sections" in (REPO / "plugins" / "curate_report" / "page.py").read_text()


def test_run_hooks_are_called_with_keywords_a_subset_is_enough(pm, register_plugin, workdir):
    calls: list[tuple] = []

    class Recorder:
        @hookimpl
        def curate_run_started(self, run_dir, spec):
            calls.append(("started", run_dir.name, spec.name))

        @hookimpl
        def curate_step_finished(self, record):  # only the argument it needs
            calls.append(("step", record["label"], record["rows_out"], record["cached"]))

        @hookimpl
        def curate_run_finished(self, manifest):
            calls.append(("finished", manifest["status"]))

    register_plugin(Recorder(), "recorder")
    spec = {"name": "hooks", "source": {"path": "data.parquet"},
            "steps": [{"step": "filter", "params": {"where": "false"}}]}
    run_spec(spec, workdir, tables={"data.parquet": sample_table(10)}, pm=pm)
    assert calls == [("started", "run", "hooks"), ("step", "source", 10, False), ("step", "filter", 0, False),
                     ("finished", "complete")]


class HalfInstalled:
    """A plugin that imports, but whose hook imports a module that is not there."""

    @hookimpl
    def curate_register_steps(self):
        import curate_test_missing_steps_module  # noqa: F401


class CommandsMissing:
    @hookimpl
    def curate_register_commands(self, cli):
        import curate_test_missing_cli_module  # noqa: F401


def test_a_plugin_whose_register_hook_raises_is_a_warning_naming_it(pm, register_plugin):
    register_plugin(HalfInstalled(), "half")
    with pytest.warns(PluginLoadWarning, match="curate plugin 'half' failed in its curate_register_steps hook.*"
                                               "No module named 'curate_test_missing_steps_module'"):
        names = pm.steps.names()
    assert "filter" in names
    assert "half" in pm.failed


def test_a_plugin_whose_commands_hook_raises_does_not_take_the_cli_down(register_plugin, curate_main):
    register_plugin(CommandsMissing(), "commands")
    with pytest.warns(PluginLoadWarning, match="'commands' failed in curate_register_commands"):
        result = curate_main("plugins", "--json")
    assert result.code == 0, result
    assert "commands" in result.json()["failed"]


# -- docs/plugin_hooks.md: every hook, its signature, and examples that run ---------------------
HOOK_DOCS = REPO / "docs" / "plugin_hooks.md"


def _documented_hooks() -> dict[str, str]:
    """Each ``## curate_…`` heading with the signature in the code block right under it."""
    import re

    text = HOOK_DOCS.read_text()
    return {name: signature.strip() for name, signature in
            re.findall(r"^## (curate_\w+)\n\n```\n(.*?)\n```", text, flags=re.MULTILINE)}


def _examples() -> list[str]:
    import re

    return re.findall(r"```python\n(.*?)```", HOOK_DOCS.read_text(), flags=re.DOTALL)


def test_plugin_hooks_are_documented_with_their_signatures():
    documented = _documented_hooks()
    assert set(documented) == set(HOOKS), "docs/plugin_hooks.md and the hookspecs disagree on which hooks exist"
    for name, function in HOOKS.items():
        signature = str(inspect.signature(function)).replace("'", "")
        assert documented[name] == f"{name}{signature}", f"{name}: the documented signature drifted"


@pytest.mark.parametrize("index", range(len(_examples())))
def test_every_example_in_the_hook_docs_runs_and_registers_cleanly(index):
    import curate_clip
    import curate_mix

    namespace: dict = {"__name__": f"hook_doc_example_{index}"}
    exec(compile(_examples()[index], f"docs/plugin_hooks.md example {index}", "exec"), namespace)
    plugins = [value for name, value in namespace.items() if name.endswith("Plugin") and isinstance(value, type)]
    assert plugins, "each example defines a plugin class"
    manager = PluginManager(load_entry_points=False)
    manager.register(curate_basics, name="basics")
    manager.register(curate_mix, name="mix")
    manager.register(curate_clip, name="clip")
    for plugin in plugins:
        manager.register(plugin(), name=plugin.__name__)  # strict: an undeclared hook raises
        assert manager.unknown_hooks(plugin.__name__) == []
    manager.registries()  # the register hooks return what the registries accept


class Misspelled:
    @hookimpl
    def curate_register_step(self):  # the real hook is curate_register_steps
        return []


def test_a_misspelled_hook_is_an_error_naming_the_plugin_and_the_hook(pm):
    with pytest.raises(PluginError, match="curate plugin 'typo' implements hooks no plugin declares: "
                                          "'curate_register_step' \\(did you mean 'curate_register_steps'\\?\\)"):
        pm.register(Misspelled(), name="typo")
    assert "typo" not in pm.infos


def test_an_installed_plugin_with_a_misspelled_hook_is_skipped_with_a_warning(monkeypatch):
    class EntryPoint:
        name, value, dist = "typo", "typo_module", None

        def load(self):
            return Misspelled()

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [EntryPoint()])
    with pytest.warns(PluginLoadWarning, match="'typo' implements hooks no plugin declares"):
        manager = PluginManager()
    assert "typo" in manager.failed and "typo" not in manager.infos


class AddsAHook:
    @hookimpl
    def curate_add_hookspecs(self, pluginmanager):
        import types

        import pluggy

        module = types.ModuleType("adds_a_hook_specs")
        module.curate_colours = pluggy.HookspecMarker("curate")(lambda: None)
        pluginmanager.add_hookspecs(module)


class ImplementsIt:
    @hookimpl
    def curate_colours(self):
        return ["red"]


def test_a_plugin_adds_its_own_hook_and_another_implements_it(pm):
    pm.register(AddsAHook(), name="adds")
    pm.register(ImplementsIt(), name="implements")
    assert pm.hook.curate_colours() == [["red"]]


def test_the_worked_source_table_step_and_sink_examples_run_through_the_engine(tmp_path):
    """The docs' source, table step and sink, exec'd as written, curate a file end to end: the
    examples cannot rot into code that only registers."""
    from curate.testing.runner import run_spec

    namespace: dict = {"__name__": "hook_doc_worked_examples"}
    for index, example in enumerate(_examples()):
        if any(name in example for name in ("class UrlLines(", "class LongestK(", "class CaptionLines(")):
            exec(compile(example, f"docs/plugin_hooks.md example {index}", "exec"), namespace)
    manager = PluginManager(load_entry_points=False)
    manager.register(curate_basics, name="basics")
    for name in ("UrlLinesPlugin", "LongestKPlugin", "CaptionLinesPlugin"):
        manager.register(namespace[name](), name=name)
    (tmp_path / "pairs.txt").write_text(
        "http://a.test/1.jpg a red circle\n"
        "http://a.test/2.jpg a small blue square on grass\n"
        "http://a.test/3.jpg sky\n"
        "http://a.test/4.jpg two green  triangles\tand a star\n")
    spec = {
        "name": "worked",
        "source": {"format": "url_lines", "path": "pairs.txt"},
        "steps": [{"step": "longest_k", "params": {"k": 2}}],
        "outputs": [{"format": "caption_lines", "path": "captions.txt", "params": {"column": "alt_text"}}],
        "run": {"report": False},
    }
    manifest = run_spec(spec, tmp_path, pm=manager)
    captions = (tmp_path / "run" / "captions.txt").read_text().splitlines()
    assert sorted(captions) == ["a small blue square on grass", "two green triangles and a star"]
    longest = next(step for step in manifest["steps"] if step["label"] == "longest_k")
    assert longest["rows_out"] == 2 and longest["dropped"] == {"not_longest_k": 2}
