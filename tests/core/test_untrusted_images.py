"""The images an untrusted spec's rows name (--untrusted) are read only from the working directory,
the run directory and its store, links resolved.

A stranger's bundle holds a table inside the working directory, so its source is allowed; its rows
name the images: ``{shard: /home/you/photos, key: …}``, a shard with ``..``, or a link in the
bundle that leads out. Before, steps and outputs read them wherever they lay: an untrusted run
copied a picture of the user's into its webdataset export, scored it with CLIP, embedded it. Now
an export fails naming the row, a step treats the image as missing (a null score, no descriptor),
and nothing outside is opened, which a named pipe outside proves (its writer would wake up). A
trusted spec reads where its rows say, as before.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pytest

from curate.plugins import PluginManager
from tests.conftest import builtin_plugins
from tests.core.test_run_dir_safety import no_endless_wait

PLUGINS = ("basics", "captioner", "clip", "dedup", "export")
KEY = "k"


@pytest.fixture
def pm() -> PluginManager:
    return builtin_plugins(*PLUGINS)


def jpeg(color: str, size: int = 32) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def places(tmp_path: Path, workdir: Path) -> dict[str, Path]:
    """The user's own picture outside the working directory (``workdir``), a pipe beside it, and
    the stranger's bundle inside with a link out, a folder whose member links out, and a picture:

        elsewhere/photos/k.jpg, elsewhere/pipe.tar (a FIFO)
        work/bundle/photos -> elsewhere/photos, work/bundle/pics/k.jpg -> elsewhere/photos/k.jpg
        work/bundle/own/k.jpg                                    (the bundle's own: read)
        work/run/store/mine/k.jpg                                 (in the run's store: read)
    """
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "photos").mkdir(parents=True)
    (elsewhere / "photos" / f"{KEY}.jpg").write_bytes(jpeg("blue"))
    os.mkfifo(elsewhere / "pipe.tar")
    bundle = workdir / "bundle"
    (bundle / "own").mkdir(parents=True)
    (bundle / "own" / f"{KEY}.jpg").write_bytes(jpeg("red"))
    (bundle / "photos").symlink_to(elsewhere / "photos")
    (bundle / "pics").mkdir()
    (bundle / "pics" / f"{KEY}.jpg").symlink_to(elsewhere / "photos" / f"{KEY}.jpg")
    store = workdir / "run" / "store"
    (store / "mine").mkdir(parents=True)
    (store / "mine" / f"{KEY}.jpg").write_bytes(jpeg("green"))
    return {"elsewhere": elsewhere, "bundle": bundle, "store": store}


def shards(places: dict[str, Path]) -> dict[str, str]:
    """Each way a row names an image (a shard relative to the run's store, or absolute)."""
    elsewhere, bundle = places["elsewhere"], places["bundle"]
    return {
        "absolute": str(elsewhere / "photos"),
        "dotdot": os.path.relpath(elsewhere / "photos", places["store"]),  # ../../../elsewhere/photos
        "link": str(bundle / "photos"),  # inside as written, a link out
        "member link": str(bundle / "pics"),  # a folder inside whose k.jpg links out
        "pipe": str(elsewhere / "pipe.tar"),
        "bundle": str(bundle / "own"),
        "store": "mine",
    }


OUTSIDE = ["absolute", "dotdot", "link", "member link"]
INSIDE = ["bundle", "store"]


def write_table(workdir: Path, rows: dict[str, str]) -> None:
    """``data.parquet``: one row per (name, shard), the name as its alt-text, a caption to export."""
    pl.DataFrame({
        "url": [f"http://example.invalid/{name}.jpg" for name in rows],
        "alt_text": list(rows),
        "caption": [f"a picture ({name})" for name in rows],
        "image": [{"shard": shard, "key": KEY} for shard in rows.values()],
    }, schema={"url": pl.Utf8, "alt_text": pl.Utf8, "caption": pl.Utf8,
               "image": pl.Struct({"shard": pl.Utf8, "key": pl.Utf8})}).write_parquet(workdir / "data.parquet")


def run(curate_main, write_spec, *extra: str, steps=(), outputs=None, seconds: int = 300):
    spec = {"name": "stranger", "source": {"format": "parquet", "path": "data.parquet"}, "steps": list(steps),
            "outputs": outputs or [{"format": "parquet", "path": "out.parquet"}],
            "run": {"dir": "run", "report": False}}
    write_spec(spec)
    with no_endless_wait(seconds):
        return curate_main("run", "spec.yaml", *extra)


@contextmanager
def watching(pipe: Path) -> Iterator[dict[str, bool]]:
    """Whether anything opened ``pipe`` while the block ran: a thread waits to open its writing
    end, which returns once a reader opens it (however briefly). Bounded: on the way out the
    test opens the reading end itself, so the thread ends."""
    seen = {"opened": False}
    woke = threading.Event()

    def wait_for_a_reader() -> None:
        os.close(os.open(pipe, os.O_WRONLY))
        woke.set()

    thread = threading.Thread(target=wait_for_a_reader, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        seen["opened"] = woke.wait(1)  # a reader during the run woke it at once
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        thread.join(30)
        os.close(reader)
        assert not thread.is_alive()


# -- an export copies the image bytes into what the stranger gets back --------------------------

def exported_bytes(workdir: Path) -> bytes:
    out = b""
    for path in sorted((workdir / "run" / "shards").glob("*.tar")):
        with tarfile.open(path) as archive:
            out += b"".join(archive.extractfile(m).read() for m in archive if m.name.endswith(".jpg"))
    return out


@pytest.mark.parametrize("how", [*OUTSIDE, "pipe"])
def test_an_untrusted_export_reads_no_image_outside(curate_main, write_spec, workdir, places, how):
    """Before, the user's picture was in the stranger's tar (a pipe was opened: a read that
    waited, but for O_NONBLOCK)."""
    write_table(workdir, {how: shards(places)[how]})
    with watching(places["elsewhere"] / "pipe.tar") as pipe:
        result = run(curate_main, write_spec, "--untrusted", outputs=[{"format": "webdataset", "path": "shards"}])
    leaked = jpeg("blue") in exported_bytes(workdir)
    assert not leaked, "the user's picture is in the stranger's export"
    assert not pipe["opened"]
    assert result.code != 0, result
    message = " ".join(result.stderr.split())
    assert "output 'webdataset' (shards): row" in message, result
    assert "lies outside" in message and "the spec is untrusted" in message, result
    assert "without --untrusted if you trust it" in message, result  # how to go on


def test_an_untrusted_export_reads_images_in_the_working_directory_and_the_store(curate_main, write_spec, workdir,
                                                                                 places):
    write_table(workdir, {name: shards(places)[name] for name in INSIDE})
    result = run(curate_main, write_spec, "--untrusted", outputs=[{"format": "webdataset", "path": "shards"}])
    assert result.code == 0, result
    exported = exported_bytes(workdir)
    assert jpeg("red") in exported and jpeg("green") in exported


def test_a_trusted_export_reads_where_its_rows_say(curate_main, write_spec, workdir, places):
    write_table(workdir, {name: shards(places)[name] for name in [*OUTSIDE, *INSIDE]})
    result = run(curate_main, write_spec, outputs=[{"format": "webdataset", "path": "shards"}])
    assert result.code == 0, result
    assert exported_bytes(workdir).count(jpeg("blue")) == len(OUTSIDE)


# -- steps: an image outside is a row without an image ------------------------------------------

def scores(workdir: Path, column: str) -> dict[str, float | None]:
    table = pl.read_parquet(workdir / "run" / "out.parquet")
    return dict(zip(table["alt_text"].to_list(), table[column].to_list(), strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("decode", ["loader", "device"])
def test_untrusted_clip_score_reads_no_image_outside(curate_main, write_spec, workdir, places, decode):
    """Before, the user's pictures were scored (and their embeddings stored): each outside row had a
    score, and the pipe was opened. ``decode: device`` reads bytes through its own dataset."""
    write_table(workdir, shards(places))
    steps = [{"step": "clip_score", "params": {"device": "cpu", "decode": decode, "batch_size": 4}}]
    with watching(places["elsewhere"] / "pipe.tar") as pipe:
        result = run(curate_main, write_spec, "--untrusted", steps=steps)
    assert result.code == 0, result
    scored = scores(workdir, "clip_score")
    assert {name: scored[name] for name in [*OUTSIDE, "pipe"]} == dict.fromkeys([*OUTSIDE, "pipe"])
    assert all(scored[name] is not None for name in INSIDE), scored
    assert not pipe["opened"]

    trusted = run(curate_main, write_spec, "--run-dir", "trusted", steps=steps)
    assert trusted.code == 0, trusted
    table = pl.read_parquet(workdir / "trusted" / "out.parquet")
    by_name = dict(zip(table["alt_text"].to_list(), table["clip_score"].to_list(), strict=True))
    assert all(by_name[name] is not None for name in [*OUTSIDE, "bundle"]), by_name  # read as before


@pytest.mark.slow
def test_untrusted_copy_embed_reads_no_image_outside(curate_main, write_spec, workdir, places):
    """Before, copy_embed stored a descriptor of each of the user's pictures."""
    from curate.embeddings import EmbeddingStore

    write_table(workdir, shards(places))
    steps = [{"step": "copy_embed", "params": {"device": "cpu", "batch_size": 4}}]
    with watching(places["elsewhere"] / "pipe.tar") as pipe:
        result = run(curate_main, write_spec, "--untrusted", steps=steps)
    assert result.code == 0, result
    table = pl.read_parquet(workdir / "run" / "out.parquet")
    name_of = dict(zip(table["uid"].to_list(), table["alt_text"].to_list(), strict=True))
    step_dir = next((workdir / "run" / "steps").glob("*copy_embed*"))
    embedded = {name_of[uid] for uid in EmbeddingStore.of_step(step_dir, "copy").uids().to_list()}
    assert embedded == set(INSIDE)
    assert not pipe["opened"]


@pytest.mark.slow
def test_untrusted_realign_reads_no_image_path_outside(curate_main, write_spec, workdir, places):
    """Rows may name their images by path (``images: path``, relative to ``image_root``): before,
    the captioner described the user's pictures (and read the pipe)."""
    elsewhere = places["elsewhere"]
    paths = {"absolute": str(elsewhere / "photos" / f"{KEY}.jpg"),
             "dotdot": f"../../elsewhere/photos/{KEY}.jpg",  # from image_root bundle/
             "link": f"photos/{KEY}.jpg", "member link": f"pics/{KEY}.jpg", "pipe": str(elsewhere / "pipe.tar"),
             "bundle": f"own/{KEY}.jpg"}
    pl.DataFrame({"url": [f"http://example.invalid/{name}.jpg" for name in paths], "alt_text": list(paths),
                  "image": list(paths.values())}).write_parquet(workdir / "data.parquet")
    steps = [{"step": "realign", "params": {"images": "path", "image_root": "bundle", "device": "cpu",
                                            "temperature": 0, "max_new_tokens": 8}}]
    with watching(elsewhere / "pipe.tar") as pipe:
        result = run(curate_main, write_spec, "--untrusted", steps=steps)
    assert result.code == 0, result
    captions = scores(workdir, "caption_realigned")
    assert {name: captions[name] for name in [*OUTSIDE, "pipe"]} == dict.fromkeys([*OUTSIDE, "pipe"])
    assert captions["bundle"], captions
    assert not pipe["opened"]


@pytest.mark.slow
def test_untrusted_train_captioner_fails_naming_an_image_outside(curate_main, write_spec, workdir, places):
    """Training on a hole would shift every later row, so a missing image fails it: one outside
    does too, saying why. Before, the captioner trained on the user's picture."""
    path = str(places["elsewhere"] / "photos" / f"{KEY}.jpg")
    pl.DataFrame({"url": ["http://example.invalid/1.jpg"], "alt_text": ["a blue square"], "caption": ["blue"],
                  "image": [path]}).write_parquet(workdir / "data.parquet")
    steps = [{"step": "train_captioner", "params": {"init": "world", "images": "path", "steps": 1, "batch_size": 1,
                                                    "device": "cpu"}}]
    result = run(curate_main, write_spec, "--untrusted", steps=steps)
    assert result.code != 0, result
    message = " ".join(result.stderr.split())
    assert f"training image '{path}' lies outside" in message and "the spec is untrusted" in message, result


def write_pairs(workdir: Path, rows: dict[str, str]) -> None:
    """``data.parquet`` for either training step: one row per (name, shard), with a pair to prefer."""
    pl.DataFrame({
        "url": [f"http://example.invalid/{name}.jpg" for name in rows],
        "alt_text": list(rows), "caption": ["a square"] * len(rows), "chosen": ["a square"] * len(rows),
        "rejected": ["a round circle"] * len(rows), "dimension": ["textual"] * len(rows),
        "image": [{"shard": shard, "key": KEY} for shard in rows.values()],
    }, schema={"url": pl.Utf8, "alt_text": pl.Utf8, "caption": pl.Utf8, "chosen": pl.Utf8, "rejected": pl.Utf8,
               "dimension": pl.Utf8, "image": pl.Struct({"shard": pl.Utf8, "key": pl.Utf8})}
    ).write_parquet(workdir / "data.parquet")


TRAINING = {"train_captioner": {"stage": 2}, "preference_captioner": {}}


def training(step: str) -> list[dict]:
    params = {"init": "world", "steps": 1, "batch_size": 1, "device": "cpu", **TRAINING[step]}
    return [{"step": step, "params": params}]


@pytest.mark.slow
@pytest.mark.parametrize(("step", "how"), [*(("train_captioner", how) for how in [*OUTSIDE, "pipe"]),
                                           *(("preference_captioner", how) for how in ["dotdot", "pipe"])])
def test_untrusted_training_steps_read_no_ref_outside(curate_main, write_spec, workdir, places, step, how):
    """A ``{shard, key}`` outside fails the training step naming it, and nothing outside is opened."""
    write_pairs(workdir, {how: shards(places)[how]})
    with watching(places["elsewhere"] / "pipe.tar") as pipe:
        result = run(curate_main, write_spec, "--untrusted", steps=training(step))
    assert result.code != 0, result
    message = " ".join(result.stderr.split())
    assert f"shard {shards(places)[how]}" in message and "lies outside" in message, result
    assert "the spec is untrusted" in message, result
    assert not pipe["opened"]


@pytest.mark.slow
@pytest.mark.parametrize("step", TRAINING)
def test_untrusted_training_steps_read_refs_in_the_bundle_and_the_store(curate_main, write_spec, workdir, places,
                                                                         step):
    """A shard relative to the run's store (as the download step writes it) is read, as is one in
    the bundle. Before, train_captioner read a relative shard without the store (it was not found)
    and preference_captioner failed on any {shard, key} (unhashable)."""
    write_pairs(workdir, {name: shards(places)[name] for name in INSIDE})
    result = run(curate_main, write_spec, "--untrusted", steps=training(step))
    assert result.code == 0, result
