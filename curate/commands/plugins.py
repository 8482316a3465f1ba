"""``curate plugins``: the installed plugins, their versions, and the steps, sources, sinks,
executors, hooks and sub-commands each provides."""

from __future__ import annotations

import json
from typing import Any

import click

from curate.commands.shared import _console, _pm
from curate.display import for_rich


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, with params schemas.")
def plugins(as_json: bool) -> None:
    """List installed plugins, their versions and what they provide."""
    pm = _pm()
    registries = pm.registries()
    data: dict[str, Any] = {"plugins": [], "failed": pm.failed,
                            "clashes": {kind: dict(r.clashes) for kind, r in registries.items() if r.clashes}}
    for name, info in sorted(pm.infos.items()):
        entry: dict[str, Any] = {"name": name, "module": info.module, "distribution": info.distribution,
                                 "version": info.version}
        for kind, registry in registries.items():
            provided = {key: cls for key, cls in registry.classes.items() if registry.owners[key] == name}
            entry[kind + "s"] = {
                key: {"description": (cls.description or (cls.__doc__ or "").strip().split("\n")[0]),
                      "params": _params_schema(cls.Params),
                      **({"requires": list(cls.requires), "extra": cls.extra}
                         if getattr(cls, "requires", ()) else {})}
                for key, cls in sorted(provided.items())
            }
        entry.update(_hooks_of(pm, name))
        data["plugins"].append(entry)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    console = _console()
    for entry in data["plugins"]:
        console.print(f"[bold]{entry['name']}[/bold] {entry['version'] or ''}  ({entry['module']})")
        for kind in ("steps", "sources", "sinks", "executors"):
            for key, info in entry.get(kind, {}).items():
                props = info["params"].get("properties", {})
                params = ", ".join(f"{p}" + (f"={v['default']!r}" if "default" in v else "")
                                   for p, v in props.items())
                needs = f" [dim](needs curate\\[{info['extra']}])[/dim]" if info.get("extra") else ""
                console.print(f"  {kind[:-1]:8} [cyan]{key}[/cyan]{needs}: {info['description']}")
                if params:
                    console.print(f"           params: {params}")
        for hook, keys in entry.get("provides", {}).items():
            console.print(f"  {hook}: [cyan]{', '.join(keys)}[/cyan]")
        if entry.get("commands"):
            console.print(f"  commands  [cyan]{', '.join(entry['commands'])}[/cyan]")
        others = [hook for hook in entry["hooks"]
                  if hook not in _LISTED_HOOKS and hook not in entry.get("provides", {})]
        if others:
            console.print(f"  [dim]hooks: {', '.join(others)}[/dim]")
    for name, error in pm.failed.items():
        console.print(f"[red]failed[/red] {for_rich(name)}: {for_rich(error)}")
    for kind, registry in registries.items():
        for key in sorted(registry.clashes):
            console.print(f"[red]clash[/red] {for_rich(str(registry.clash_error(key)))}")


def _params_schema(params: Any) -> dict[str, Any]:
    """The params' JSON schema with every default, those made by a ``default_factory`` (a list or
    dict) too: pydantic leaves them out, and a param without a default reads as required."""
    from pydantic_core import to_jsonable_python

    schema = params.model_json_schema()
    for name, field in params.model_fields.items():
        prop = schema.get("properties", {}).get(field.alias or name)
        if prop is not None and "default" not in prop and field.default_factory is not None:
            prop["default"] = to_jsonable_python(field.get_default(call_default_factory=True))
    return schema


# Hooks whose results `curate plugins` shows as registries or commands (the rest it lists by name).
_LISTED_HOOKS = {"curate_register_steps", "curate_register_sources", "curate_register_sinks",
                 "curate_register_executors", "curate_register_commands"}


def _hooks_of(pm: Any, name: str) -> dict[str, Any]:
    """What one plugin hooks into: every hook it implements, the sub-commands it adds, and, for
    hooks other plugins declare (``curate_mix_strategies``…), the names of the classes it returns."""
    plugin = pm.pm.get_plugin(name)
    hooks = sorted(caller.name for caller in pm.pm.get_hookcallers(plugin) or [])
    found: dict[str, Any] = {"hooks": hooks, "commands": [], "provides": {}}
    for caller in pm.pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if caller.name == "curate_register_commands":
                group = click.Group()
                try:
                    impl.function(**{arg: group for arg in impl.argnames if arg == "cli"})
                except Exception:  # noqa: BLE001 - reported where the CLI adds commands
                    continue
                found["commands"] = sorted(group.commands)
            elif caller.name.startswith("curate_") and caller.name not in _LISTED_HOOKS and not impl.argnames:
                try:
                    result = impl.function()
                except Exception:  # noqa: BLE001 - a listing must not fail on one plugin
                    continue
                names = [getattr(item, "name", None) for item in result or [] if isinstance(item, type)]
                if names and all(names):
                    found["provides"][caller.name] = sorted(names)
    return found
