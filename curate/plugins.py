"""The plugin manager: entry-point discovery, registries of steps/sources/sinks/executors."""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import pluggy

from curate import hookspecs
from curate.errors import PluginError
from curate.suggest import closest

ENTRY_POINT_GROUP = "curate"


class PluginLoadWarning(UserWarning):
    """A plugin could not be imported; the run goes on without it."""


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str | None
    version: str | None


@dataclass
class Registry:
    """Name → class for one kind of extension, remembering which plugin provided each."""

    kind: str
    classes: dict[str, type] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    # key → every plugin that provides it, for a key two plugins claim: using it is an error (which
    # would run is anyone's guess); the other keys, and `curate plugins`, work as before.
    clashes: dict[str, list[str]] = field(default_factory=dict)

    def add(self, key: str, cls: type, owner: str) -> None:
        if key in self.classes and self.classes[key] is not cls:
            self.clashes.setdefault(key, [self.owners[key]]).append(owner)
            return
        self.classes[key] = cls
        self.owners[key] = owner

    def clash_error(self, key: str) -> PluginError:
        first, *others = self.clashes[key]
        return PluginError(
            f"{self.kind} '{key}' is provided by both plugin '{first}' and plugin '{others[0]}'"
            + (f" (and {', '.join(repr(o) for o in others[1:])})" if len(others) > 1 else ""),
            hint="uninstall one of them, or rename the class's name in your plugin")

    def get(self, key: str) -> type | None:
        """The class registered under ``key`` (None: none); a key two plugins claim raises PluginError."""
        if key in self.clashes:
            raise self.clash_error(key)
        return self.classes.get(key)

    def suggest(self, key: str) -> str | None:
        close = closest(key, self.classes)
        return close[0] if close else None

    def names(self) -> list[str]:
        return sorted(self.classes)


class PluginManager:
    def __init__(self, *, load_entry_points: bool = True):
        self.pm = pluggy.PluginManager("curate")
        self.pm.add_hookspecs(hookspecs)
        # Historic: each plugin, whenever it registers, may add hooks of its own.
        self.pm.hook.curate_add_hookspecs.call_historic(kwargs={"pluginmanager": self.pm})
        self._loading = False
        self.infos: dict[str, PluginInfo] = {}
        self.failed: dict[str, str] = {}
        self._registries: dict[str, Registry] | None = None
        if os.environ.get("CURATE_TRACE_PLUGINS"):
            self.pm.trace.root.setwriter(lambda text: sys.stderr.write(text))
            self.pm.enable_tracing()
        if load_entry_points:
            self.load_entry_points()

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def load_entry_points(self) -> None:
        self._loading = True
        try:
            self._load_entry_points()
        finally:
            self._loading = False
        # Checked once all are in: a plugin may implement a hook that a later one adds.
        for name in list(self.infos):
            self._check_hooks(name, strict=False)

    def _load_entry_points(self) -> None:
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if self.pm.has_plugin(entry_point.name) or entry_point.name in self.failed:
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # a broken plugin must not break every run
                self.failed[entry_point.name] = f"{type(exc).__name__}: {exc}"
                warnings.warn(
                    f"curate plugin '{entry_point.name}' ({entry_point.value}) failed to import and is "
                    f"skipped: {type(exc).__name__}: {exc}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            # One parse of the distribution's METADATA for both (``dist.version`` parses it again).
            metadata = entry_point.dist.metadata if entry_point.dist else None
            try:
                self.register(
                    plugin,
                    name=entry_point.name,
                    distribution=metadata["Name"] if metadata is not None else None,
                    version=metadata["Version"] if metadata is not None else None,
                )
            except PluginError as exc:  # named and skipped, as a plugin that fails to import
                self.failed[entry_point.name] = str(exc)
                warnings.warn(f"{exc} ({exc.hint}); the plugin is skipped", PluginLoadWarning, stacklevel=2)

    def plugin_failed(self, name: str, what: str, exc: Exception) -> None:
        """A plugin's hook raised: warn naming the plugin and go on without what it provides."""
        self.failed.setdefault(name, f"{type(exc).__name__}: {exc}")
        warnings.warn(
            f"curate plugin '{name}' failed in {what} and is partly skipped: {type(exc).__name__}: {exc}",
            PluginLoadWarning,
            stacklevel=3,
        )

    def notify(self, hook_name: str, **kwargs: Any) -> None:
        """Tell every plugin of a run event (``curate_run_started``, ``curate_step_finished``,
        ``curate_run_finished``), each on its own: one that raises is named in a warning and the
        others are still told. An observer's bug must not fail a run whose data is fine, nor be
        reported as curate's internal error. (A hook with a wrapper is called as pluggy calls it.)"""
        caller = getattr(self.pm.hook, hook_name)
        impls = caller.get_hookimpls()
        if any(impl.hookwrapper or getattr(impl, "wrapper", False) for impl in impls):
            caller(**kwargs)
            return
        for impl in reversed(impls):  # pluggy's order: the last registered first
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:  # noqa: BLE001 - any plugin's failure, named
                warnings.warn(f"curate plugin '{impl.plugin_name}' failed in its {hook_name} hook, and the run "
                              f"goes on: {type(exc).__name__}: {exc}", PluginLoadWarning, stacklevel=3)

    def register(self, plugin: Any, name: str, distribution: str | None = None, version: str | None = None):
        methods = sorted(key for key, value in vars(plugin).items() if inspect.isfunction(value)
                         and getattr(value, "curate_impl", None) is not None) if inspect.isclass(plugin) else []
        if methods:  # pluggy would call them without ``self``: every run would fail in them
            raise PluginError(
                f"curate plugin '{name}' is the class {plugin.__qualname__}, whose hooks ({', '.join(methods)}) are "
                "methods needing an instance",
                hint=f"register an instance: `plugin = {plugin.__name__}()` in its module, and the entry point "
                     f"'{getattr(plugin, '__module__', 'module')}:plugin'")
        self.pm.register(plugin, name=name)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        self.infos[name] = PluginInfo(name, module, distribution, version)
        self._registries = None
        if not self._loading:
            self._check_hooks(name, strict=True)

    def unknown_hooks(self, name: str) -> list[str]:
        """Hooks plugin ``name`` implements that no plugin declares (a misspelled hook name would
        otherwise never be called, silently)."""
        plugin = self.pm.get_plugin(name)
        unknown = []
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            impls = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
            if any(not impl.optionalhook for impl in impls):
                unknown.append(caller.name)
        return sorted(unknown)

    def _check_hooks(self, name: str, *, strict: bool) -> None:
        unknown = self.unknown_hooks(name)
        if not unknown:
            return
        known = sorted(n for n in dir(self.pm.hook) if n.startswith("curate_")
                       and getattr(self.pm.hook, n).has_spec())
        problems = []
        for hook in unknown:
            close = closest(hook, known)
            problems.append(f"'{hook}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        message = (f"curate plugin '{name}' implements hooks no plugin declares: {', '.join(problems)}; "
                   f"declared hooks are listed in docs/plugin_hooks.md")
        self.unregister(name)
        if strict:
            raise PluginError(message)
        # An installed plugin with a typo is treated like one that fails to import: named, skipped.
        self.failed[name] = message
        warnings.warn(message + "; the plugin is skipped", PluginLoadWarning, stacklevel=3)

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.infos.pop(name, None)
        self._registries = None

    # -- registries -----------------------------------------------------------------------
    def _collect(self, kind: str, hook_name: str, key_attr: str) -> Registry:
        registry = Registry(kind)
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            owner = impl.plugin_name
            try:
                result = impl.function()
            except Exception as exc:  # registering imports the plugin's modules: same rule as loading
                self.plugin_failed(owner, f"its {hook_name} hook", exc)
                continue
            for cls in result or []:
                key = getattr(cls, key_attr, None)
                if not key:
                    raise PluginError(f"plugin '{owner}' registered {cls!r} without a '{key_attr}'")
                registry.add(key, cls, owner)
        return registry

    def registries(self) -> dict[str, Registry]:
        if self._registries is None:
            self._registries = {
                "step": self._collect("step", "curate_register_steps", "name"),
                "source": self._collect("source", "curate_register_sources", "format"),
                "sink": self._collect("sink", "curate_register_sinks", "format"),
                "executor": self._collect("executor", "curate_register_executors", "name"),
            }
        return self._registries

    @property
    def steps(self) -> Registry:
        return self.registries()["step"]

    @property
    def sources(self) -> Registry:
        return self.registries()["source"]

    @property
    def sinks(self) -> Registry:
        return self.registries()["sink"]

    @property
    def executors(self) -> Registry:
        return self.registries()["executor"]

    def version_of(self, kind: str, key: str) -> str:
        """The version of the plugin that provides ``key`` (part of every cache fingerprint)."""
        owner = self.registries()[kind].owners.get(key)
        info = self.infos.get(owner or "")
        return (info.version if info and info.version else "0") if info else "0"

    def plugin_versions(self) -> dict[str, str | None]:
        return {name: info.version for name, info in sorted(self.infos.items())}


_default: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide manager with every installed plugin loaded (created on first use)."""
    global _default
    if _default is None:
        _default = PluginManager()
    return _default


def reset_plugin_manager() -> None:
    global _default
    _default = None
