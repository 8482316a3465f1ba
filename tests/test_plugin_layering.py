"""Plugins stand on the core, not on each other's insides (CONTRIBUTING.md, "Layering").

Read with ``ast`` (every import, also those inside functions and under ``TYPE_CHECKING``, and the
names an ``api`` module publishes through ``curate.exports.lazy_exports``):

- the core, ``curate/``, imports no plugin;
- a plugin imports of another plugin only its package (hooks and ``__version__``) and the names
  listed in that plugin's ``api`` module (``<plugin>/api.py``, its ``__all__``);
- an ``api`` module publishes only names its own plugin defines.

Tests and benchmarks may import anything: they test and measure the insides.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ALLOWED_FROM_PACKAGE = {"api", "__version__"}


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    module: str  # absolute, relative imports resolved
    names: tuple[str, ...]  # () for ``import module``
    text: str  # as written, for the message
    published: bool = False  # a ``lazy_exports`` entry of an api module, not an import statement


def plugin_packages(plugins_dir: Path) -> set[str]:
    return {p.name for p in plugins_dir.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def _package_of(file: Path, root: Path) -> tuple[str, ...]:
    parts = file.relative_to(root).with_suffix("").parts
    return parts if file.name == "__init__.py" else parts[:-1]


def imports(file: Path, root: Path) -> Iterator[Import]:
    """Every import in ``file`` (a module under ``root``), wherever it stands in the file."""
    source = file.read_text()
    lines = source.splitlines()
    for node in ast.walk(ast.parse(source, filename=str(file))):
        text = lines[node.lineno - 1].strip() if isinstance(node, ast.stmt | ast.expr) else ""
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(file, node.lineno, alias.name, (), text)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = _package_of(file, root)
                base = package[: len(package) - (node.level - 1)]
                module = ".".join((*base, *([module] if module else [])))
            yield Import(file, node.lineno, module, tuple(a.name for a in node.names), text)
        elif isinstance(node, ast.Call):
            func = node.func
            function = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0] if node.args else None
            if function in {"import_module", "__import__"} and isinstance(first, ast.Constant):
                yield Import(file, node.lineno, str(node.args[0].value), (), text)
            elif function == "lazy_exports" and len(node.args) == 2 and isinstance(node.args[1], ast.Dict):
                for key, value in zip(node.args[1].keys, node.args[1].values, strict=True):
                    if isinstance(key, ast.Constant) and isinstance(value, ast.Tuple):
                        names = tuple(str(v.value) for v in value.elts if isinstance(v, ast.Constant))
                        text = f"publishes {key.value}: {names}"
                        yield Import(file, key.lineno, str(key.value), names, text, published=True)


def public_names(plugin: str) -> set[str] | None:
    """The names ``plugin`` publishes in its ``api`` module; None when it has none."""
    try:
        api = importlib.import_module(f"{plugin}.api")
    except ModuleNotFoundError as error:
        if error.name == f"{plugin}.api":
            return None
        raise
    return set(api.__all__)


def violations(root: Path) -> list[str]:
    """One line per import that breaks the layering, as ``file:line: import — why; how to fix``."""
    plugins_dir = root / "plugins"
    plugins = plugin_packages(plugins_dir)
    found: list[str] = []

    def report(item: Import, why: str) -> None:
        found.append(f"{item.file.relative_to(root)}:{item.line}: {item.text} — {why}")

    for file in sorted((root / "curate").rglob("*.py")):
        for item in imports(file, root):
            if item.module.split(".")[0] in plugins:
                report(item, "the core imports no plugin; move what both need into curate/ or turn the call "
                             "into a hook the plugin implements")

    published: dict[str, set[str] | None] = {}
    for file in sorted(plugins_dir.rglob("*.py")):
        own = file.relative_to(plugins_dir).parts[0]
        for item in imports(file, plugins_dir):
            other = item.module.split(".")[0]
            if other not in plugins or other == own:
                continue
            if other not in published:
                published[other] = public_names(other)
            public = published[other]
            api = f"{other}.api"
            if item.published:
                report(item, f"an api module publishes only its own plugin's names; import {other}'s "
                             f"from {api} where they are used")
            elif item.module == other:
                bad = sorted(set(item.names) - ALLOWED_FROM_PACKAGE)
                if bad:
                    report(item, f"{', '.join(bad)} is private to {other}; import public names from {api}")
            elif item.module != api:
                where = f"from {api}" if public is not None else f"through a public {api} module"
                report(item, f"{item.module} is private to {other}; import what you need {where} (add the "
                             f"name to {other}/api.py if it is missing)")
            elif public is None:
                report(item, f"{other} has no api module")
            else:
                bad = sorted(n for n in item.names if n != "*" and n not in public)
                if bad:
                    report(item, f"{', '.join(bad)} is not in {api}.__all__; add it to {other}/api.py "
                                 "if other plugins may use it")
    return found


def test_plugins_use_only_each_others_public_api_and_the_core_no_plugin() -> None:
    found = violations(REPO)
    assert not found, "imports that break the plugin layering (CONTRIBUTING.md, Layering):\n" + "\n".join(
        found)


def test_an_api_module_publishes_its_own_plugins_objects() -> None:
    for plugin in sorted(plugin_packages(REPO / "plugins")):
        public = public_names(plugin)
        if public is None:
            continue
        api = importlib.import_module(f"{plugin}.api")
        assert public, f"{plugin}.api publishes nothing"
        for name in sorted(public):
            try:
                value = getattr(api, name)
            except ModuleNotFoundError as error:  # an optional dependency of that name is not installed
                if (error.name or "").startswith("curate"):
                    raise
                continue
            if inspect.isclass(value) or inspect.isfunction(value):
                defined_in = value.__module__
                assert defined_in.split(".")[0] in {plugin, "curate"}, (
                    f"{plugin}.api.{name} comes from {defined_in}")


def test_importing_every_api_module_loads_nothing_heavy(tmp_path: Path) -> None:
    plugins = REPO / "plugins"
    apis = sorted(f"{p}.api" for p in plugin_packages(plugins) if (plugins / p / "api.py").is_file())
    heavy = ("torch", "open_clip", "faiss", "transformers", "PIL", "webdataset", "matplotlib")
    probe = textwrap.dedent(f"""
        import importlib, sys
        for name in {apis!r}:
            importlib.import_module(name)
        print(sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r}))
    """)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture
def fake_plugins() -> Iterator[None]:
    """The made-up plugins of a test are forgotten after it."""
    yield
    for name in [m for m in sys.modules if m.split(".")[0].startswith("layering_")]:
        del sys.modules[name]


def test_the_check_names_file_line_and_import_of_each_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_plugins: None
) -> None:
    root = _tree(tmp_path, {
        "curate/__init__.py": "",
        "curate/engine.py": "def run():\n    import layering_b\n",
        "plugins/layering_a/__init__.py": "",
        "plugins/layering_a/api.py": (
            "from curate.exports import lazy_exports\n"
            "__all__, __getattr__, __dir__ = lazy_exports(__name__, {\n"
            "    'layering_a.inside': ('VALUE',),\n"
            "    'layering_b.inside': ('SECRET',),\n"
            "})\n"),
        "plugins/layering_a/inside.py": (
            "from layering_b.api import PUBLIC\n"
            "from layering_b import __version__\n"
            "VALUE = 1\n"
            "def later():\n"
            "    from layering_b.inside import SECRET\n"
            "    from layering_b.api import SECRET\n"
            "    from layering_b import inside\n"),
        "plugins/layering_b/__init__.py": "__version__ = '1'\n",
        "plugins/layering_b/api.py": (
            "from curate.exports import lazy_exports\n"
            "__all__, __getattr__, __dir__ = lazy_exports(__name__, {'layering_b.inside': ('PUBLIC',)})\n"),
        "plugins/layering_b/inside.py": "PUBLIC = SECRET = 2\n",
    })
    monkeypatch.syspath_prepend(str(root / "plugins"))
    found = violations(root)
    expected = [
        ("curate/engine.py:2:", "the core imports no plugin"),
        ("plugins/layering_a/api.py:4:", "publishes only its own plugin's names"),
        ("plugins/layering_a/inside.py:5: from layering_b.inside import SECRET", "private to layering_b"),
        ("plugins/layering_a/inside.py:6: from layering_b.api import SECRET", "not in layering_b.api"),
        ("plugins/layering_a/inside.py:7: from layering_b import inside", "inside is private to layering_b"),
    ]
    assert len(found) == len(expected), "\n".join(found)
    for line, (where, why) in zip(found, expected, strict=True):
        assert line.startswith(where) and why in line, line


@pytest.mark.parametrize("source", ["from . import x\n", "from .x import y\n"])
def test_relative_imports_stay_inside_their_plugin(tmp_path: Path, source: str) -> None:
    root = _tree(tmp_path, {"curate/__init__.py": "", "plugins/layering_c/__init__.py": source,
                            "plugins/layering_c/x.py": "y = 1\n"})
    assert violations(root) == []
