"""Every place a spec from someone else (--untrusted) names: each param that names a file or folder,
read or written, must lie inside the working directory, links resolved, and each storage URL (a
source, an output, a param) is refused unless the user allows its prefix with --allow-remote. All
refused at `curate validate`, naming the param, the path, why and the fix; a trusted spec is
planned as before."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest
from pydantic import Field

from curate import PLACE, hookimpl
from curate.params import Params
from curate.plugins import PluginManager
from curate.untrusted import remote_allowed
from tests.conftest import builtin_plugins
from tests.core.test_run_dir_safety import no_endless_wait

PLUGINS = ("basics", "world", "download", "clip", "captioner", "dedup", "mix", "export", "metadata")
TABLE = pl.DataFrame({"url": ["http://a/1.jpg"], "alt_text": ["a red circle"], "caption": ["a red circle"]})


@pytest.fixture
def pm() -> PluginManager:
    """Every built-in plugin whose params name a place (curate_main makes it the process-wide one)."""
    return builtin_plugins(*PLUGINS)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the working directory (the test's ``workdir``), with a pipe in it: a check
    that opened it would wait forever for a writer."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    os.mkfifo(path / "pipe")
    (path / "folder").mkdir()
    return path


@pytest.fixture(autouse=True)
def _no_reachable_bucket(monkeypatch):
    """A storage URL that got past the checks fails fast here: nothing listens on port 9."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nothing")
    monkeypatch.setenv("CURATE_S3_CALL_DEADLINE", "5")


def validate(curate_main, write_spec, *extra: str, steps=(), source=None, outputs=None, run=None):
    spec = {"name": "stranger", "source": source or {"format": "parquet", "path": "data.parquet"},
            "steps": list(steps), "outputs": outputs or [{"format": "parquet", "path": "out.parquet"}],
            "run": {"dir": "run", "report": False, **(run or {})}}
    write_spec(spec, table=TABLE)
    with no_endless_wait(60):
        return curate_main("validate", "spec.yaml", *extra)


def refused_at(result, loc: str, raw: str) -> None:
    """``result`` failed naming ``loc`` (``steps[0].params.checkpoint``), the path, why and the fix."""
    assert result.code == 2, result
    line = next((line for line in result.stderr.splitlines() if f"{loc}: '{raw}'" in line), None)
    assert line is not None, result
    assert "outside the working directory" in line, line
    assert "relative path" in line and "without --untrusted" in line, line  # how to go on


# (step, params, the param that names the place, what it names as "{}"): each names a file or folder
# its step reads (or writes: an image store) with the spec's path; "{}" is replaced by the place.
NAMED = [
    ("decontaminate", {"eval": "evals", "clip_checkpoint": "{}"}, "clip_checkpoint"),
    ("clip_score", {"checkpoint": "{}"}, "checkpoint"),
    ("clip_score", {"model": "local-dir:{}"}, "model"),
    ("realign", {"model": "{}"}, "model"),
    ("realign", {"images": "path", "image_root": "{}"}, "image_root"),
    ("train_captioner", {"init": "{}"}, "init"),
    ("preference_captioner", {"init": "{}"}, "init"),
    ("caption_pairs", {"clip_checkpoint": "{}"}, "clip_checkpoint"),
    ("caption_pairs", {"clip_model": "local-dir:{}"}, "clip_model"),
    ("download", {"image_store": "{}"}, "image_store"),
]


def _with(params: dict, place: str) -> dict:
    return {key: value.replace("{}", place) if isinstance(value, str) else value for key, value in params.items()}


@pytest.mark.parametrize("how", ["absolute", "link"])
@pytest.mark.parametrize("step, params, param", NAMED, ids=[f"{s}.{p}" for s, _, p in NAMED])
def test_a_param_naming_a_place_outside_the_working_directory_is_refused_at_validate(
        curate_main, write_spec, workdir, elsewhere, step, params, param, how):
    """Before, only eval sets, copy models and metadata lists were confined: a stranger's
    clip_checkpoint, captioner folder or image store could be any file or folder of the user's."""
    (workdir / "evals").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(workdir / "evals" / "a.png")
    target = elsewhere / ("folder" if param in ("model", "init", "image_root", "image_store", "clip_model") else "pipe")
    (workdir / "linked").symlink_to(target)
    place = str(target) if how == "absolute" else "linked"
    result = validate(curate_main, write_spec, "--untrusted", steps=[{"step": step, "params": _with(params, place)}])
    resolved = param == "image_store"  # the step resolves its image store's path as it validates its params
    refused_at(result, f"steps[0].params.{param}", str(target) if resolved else place)
    if how == "absolute" or resolved:
        assert "outside the working directory;" in result.stderr
    else:
        assert f"a link to {target}" in result.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["folder", "pipe"]  # nothing written there
    assert list((elsewhere / "folder").iterdir()) == []
    trusted = validate(curate_main, write_spec, steps=[{"step": step, "params": _with(params, place)}])
    assert "untrusted" not in trusted.stderr  # the user's own spec is checked as before


@pytest.mark.parametrize("step, param, model, file", [
    ("realign", "model", "captioner", "model.safetensors"),
    ("clip_score", "model", "local-dir:clipdir", "open_clip_model.safetensors"),
])
def test_a_model_folder_inside_whose_files_link_out_is_refused(curate_main, write_spec, workdir, elsewhere,
                                                               step, param, model, file):
    """The folder is inside, its weights a link to a file of the user's: that file would be read."""
    folder = workdir / model.removeprefix("local-dir:")
    folder.mkdir()
    (folder / file).symlink_to(elsewhere / "pipe")
    result = validate(curate_main, write_spec, "--untrusted", steps=[{"step": step, "params": {param: model}}])
    refused_at(result, f"steps[0].params.{param}", f"{model.removeprefix('local-dir:')}/{file}")
    assert f"a link to {elsewhere / 'pipe'}" in result.stderr


def test_a_place_inside_the_working_directory_is_fine(curate_main, write_spec, workdir):
    """Relative, or absolute but inside (a run's saved spec may have those): planned as trusted."""
    (workdir / "evals").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(workdir / "evals" / "a.png")
    (workdir / "weights.safetensors").write_bytes(b"")
    for place in ("weights.safetensors", str(workdir / "weights.safetensors")):
        steps = [{"step": "decontaminate", "params": {"eval": "evals", "clip_checkpoint": place}},
                 {"step": "download", "params": {"image_store": "images"}}]
        untrusted = validate(curate_main, write_spec, "--untrusted", steps=steps)
        assert "outside the working directory" not in untrusted.stderr, untrusted
        trusted = validate(curate_main, write_spec, steps=steps)
        assert (untrusted.code, untrusted.stderr) == (trusted.code, trusted.stderr)


def test_a_world_source_generates_no_world_outside_the_working_directory(curate_main, write_spec, elsewhere):
    """Its dir is written: validating a stranger's spec wrote a whole world into any folder it named."""
    world = elsewhere / "folder" / "world"
    result = validate(curate_main, write_spec, "--untrusted",
                      source={"format": "world", "params": {"n": 8, "dir": str(world)}})
    refused_at(result, "source.params.dir", str(world))
    assert not world.exists()


def test_an_exports_store_dir_outside_is_refused(curate_main, write_spec, elsewhere):
    """An export copies the images of its store_dir into the outputs: any folder of the user's."""
    store = elsewhere / "folder"
    outputs = [{"format": "webdataset", "path": "shards", "params": {"store_dir": str(store)}}]
    result = validate(curate_main, write_spec, "--untrusted", outputs=outputs)
    refused_at(result, "outputs[0].params.store_dir", str(store))


class ListFromFile(Params):
    path: str = Field("list.txt", json_schema_extra=PLACE)


class FromFile:
    """A plugin's mix strategy whose option names a file (as a plugin's may)."""

    name = "from_file"
    scope = "shard"
    Params = ListFromFile

    def __init__(self, params, columns):
        self.params, self.columns = params, columns

    def reads(self):
        return {}

    def writes(self):
        return {}


class FromFilePlugin:
    @hookimpl
    def curate_mix_strategies(self):
        return [FromFile]


def test_a_mix_strategys_option_naming_a_place_is_confined(curate_main, write_spec, register_plugin, elsewhere):
    register_plugin(FromFilePlugin(), "from-file")
    step = {"step": "mix", "params": {"strategy": "from_file", "options": {"path": str(elsewhere / "pipe")},
                                      "synthetic": "caption"}}
    result = validate(curate_main, write_spec, "--untrusted", steps=[step])
    refused_at(result, "steps[0].params.options.path", str(elsewhere / "pipe"))


@pytest.mark.parametrize("setting", ["dir", "cache_dir"])
def test_a_run_directory_that_is_a_link_out_is_refused(curate_main, write_spec, workdir, elsewhere, setting):
    """A link shipped with the spec: the run wrote its files wherever it pointed."""
    (workdir / "out").symlink_to(elsewhere / "folder")
    result = validate(curate_main, write_spec, "--untrusted", run={setting: "out/x"})
    assert result.code == 2, result
    assert f"run.{setting}: 'out/x' is a link to {elsewhere / 'folder' / 'x'}, outside the working directory" \
        in result.stderr
    assert list((elsewhere / "folder").iterdir()) == []
    assert validate(curate_main, write_spec, run={setting: "out/x"}).code == 0


# -- storage URLs -----------------------------------------------------------------------------------

def test_an_untrusted_specs_storage_urls_are_refused_unless_allowed(curate_main, write_spec):
    """Read and written with the user's credentials: a stranger's spec read the user's bucket into
    its outputs, or wrote the outputs to a bucket of its own."""
    result = validate(curate_main, write_spec, "--untrusted",
                      source={"format": "parquet", "path": "s3://private/table.parquet"},
                      steps=[{"step": "download", "params": {"image_store": "gs://theirs/images"}}],
                      outputs=[{"format": "parquet", "path": "az://theirs/out.parquet"}])
    assert result.code == 2, result
    for loc, url in [("source.path", "s3://private/table.parquet"),
                     ("steps[0].params.image_store", "gs://theirs/images"),
                     ("outputs[0].path", "az://theirs/out.parquet")]:
        line = next(line for line in result.stderr.splitlines() if f"{loc}: '{url}' is in object storage" in line)
        assert "your credentials" in line and f"--allow-remote {url}" in line and "without --untrusted" in line


def test_allow_remote_lets_an_untrusted_spec_use_urls_under_its_prefixes_only(curate_main, write_spec):
    outputs = [{"format": "parquet", "path": "s3://shared/curated/out.parquet"},
               {"format": "csv", "path": "s3://shared/curated-private/out.csv"},
               {"format": "jsonl", "path": "s3://shared/curated/../private/out.jsonl"}]
    result = validate(curate_main, write_spec, "--untrusted", "--allow-remote", "s3://shared/curated/",
                      "--allow-remote", "gs://other", outputs=outputs)
    assert result.code == 2, result
    assert "outputs[0]" not in result.stderr
    assert "outputs[1].path: 's3://shared/curated-private/out.csv' is in object storage" in result.stderr
    assert "outputs[2].path: 's3://shared/curated/../private/out.jsonl' is in object storage" in result.stderr
    allowed = validate(curate_main, write_spec, "--untrusted", "--allow-remote", "S3://shared/curated",
                       outputs=outputs[:1])
    assert allowed.code == 0, allowed
    assert validate(curate_main, write_spec, outputs=outputs[:2]).code == 0  # trusted: as before


def test_allow_remote_takes_only_storage_urls(curate_main, write_spec):
    result = validate(curate_main, write_spec, "--untrusted", "--allow-remote", "/home")
    assert result.code == 2 and "'/home' is not a storage URL" in result.stderr, result


@pytest.mark.parametrize("url, allowed, ok", [
    ("s3://b/data/x.parquet", ["s3://b/data"], True),
    ("s3://b/data", ["s3://b/data/"], True),
    ("s3://b/data-private/x", ["s3://b/data"], False),
    ("s3://b/data/../private/x", ["s3://b/data"], False),
    ("s3://b/data/./x", ["s3://b/data"], False),
    ("s3a://b/data/x", ["s3://b/data"], False),
    ("S3://b/data/x", ["s3://b"], True),
    ("gs://b/data/x", [], False),
])
def test_remote_allowed_matches_whole_segments(url, allowed, ok):
    assert remote_allowed(url, allowed) is ok


# Params whose name says they may name a place but that are not marked PLACE, and why. A new param
# named like a place must be marked (or explained here): an unmarked one is unchecked under --untrusted.
PLACE_WORDS = {"path", "dir", "root", "checkpoint", "store", "entries", "eval", "init", "model", "file", "folder"}
NOT_MARKED = {
    ("step", "clip_score", "model"): "a place only as local-dir:FOLDER, which places() names",
    ("step", "copy_embed", "model"): "a place unless 'world-copy', which places() leaves out",
    ("step", "realign", "model"): "a captioner folder unless 'world': places()",
    ("step", "caption_pairs", "model"): "a captioner folder unless 'world': places()",
    ("step", "caption_pairs", "clip_model"): "a place only as local-dir:FOLDER: places()",
    ("step", "train_captioner", "init"): "a captioner folder unless 'world': places()",
    ("step", "preference_captioner", "init"): "a captioner folder unless 'world': places()",
}


def test_every_param_named_like_a_place_is_marked_or_explained(pm):
    from curate_mix.step import available_strategies

    classes = [(kind, key, cls) for kind, registry in pm.registries().items() for key, cls in registry.classes.items()]
    classes += [("mix strategy", name, cls) for name, cls in available_strategies(pm).items()]
    unmarked = []
    for kind, key, cls in classes:
        for name, field in cls.Params.model_fields.items():
            marked = isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("place")
            if name.split("_")[-1] in PLACE_WORDS and not marked and (kind, key, name) not in NOT_MARKED:
                unmarked.append(f"{kind} {key}: {name}")
    assert unmarked == []
