from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from curate_export.sinks import ImageFolderSink, WebDatasetSink

from curate.sink import SinkContext
from curate.step import TableInput

# The table of these tests has a row without an image, which every export warns of (one test checks).
pytestmark = pytest.mark.filterwarnings("ignore::curate_export.sinks.ExportWarning")
# webdataset leaves its tar handles to the garbage collector; that is its business, not the export's.
WEBDATASET_LEAKS = pytest.mark.filterwarnings("ignore::ResourceWarning",
                                              "ignore::pytest.PytestUnraisableExceptionWarning")


def write(sink_cls, table: pl.DataFrame, tmp_path: Path, store: Path, **params):
    source = tmp_path / "input.parquet"
    table.write_parquet(source)
    ctx = SinkContext(run_dir=tmp_path / "run", spec_dir=tmp_path, seed=0, label="out", path="export")
    sink = sink_cls(sink_cls.Params(store_dir=str(store), **params), ctx)
    return sink.write(TableInput([source], dict(table.schema))), ctx.output_path


@WEBDATASET_LEAKS
def test_webdataset_tars_read_back_with_webdataset(store_table, tmp_path):
    import webdataset as wds

    store, table = store_table
    facts, out = write(WebDatasetSink, table, tmp_path, store, samples_per_shard=10)
    assert facts["rows"] == 24 and facts["shards"] == 3  # the row without an image is skipped
    dataset = wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False)
    seen = {}
    for sample in dataset.decode("pil"):
        meta = sample["json"]
        assert sample["jpg"].size == (32, 32)
        assert sample["txt"] == meta["caption"]
        assert meta["captions"] == [meta["alt_text"], meta["caption"]]
        seen[meta["uid"]] = sample["txt"]
    assert seen == dict(table.filter(pl.col("image").is_not_null()).select("uid", "caption").iter_rows())
    assert json.loads((out / "sizes.json").read_text()) == {"00000.tar": 10, "00001.tar": 10, "00002.tar": 4}


@WEBDATASET_LEAKS
def test_repeats_draw_one_candidate_per_copy_deterministically(store_table, tmp_path):
    import webdataset as wds

    store, table = store_table
    _, out = write(WebDatasetSink, table, tmp_path, store, repeats=4, seed=1)
    texts: dict[str, set[str]] = {}
    for sample in wds.WebDataset(str(out / "00000.tar"), shardshuffle=False):
        meta = json.loads(sample["json"])
        texts.setdefault(meta["uid"], set()).add(sample["txt"].decode())
        assert sample["txt"].decode() in meta["captions"]
    assert len(texts) == 24 and any(len(t) == 2 for t in texts.values())
    first = (out / "00000.tar").read_bytes()
    write(WebDatasetSink, table, tmp_path, store, repeats=4, seed=1)
    assert (out / "00000.tar").read_bytes() == first


def test_imagefolder_reads_with_hf_datasets_offline(store_table, tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    store, table = store_table
    facts, out = write(ImageFolderSink, table, tmp_path, store, metadata=["alt_text", "caption_source", "color"])
    assert facts["rows"] == 24
    import warnings

    from datasets import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # datasets' own deprecation notices are not ours to fix
        dataset = load_dataset("imagefolder", data_dir=str(out), split="train",
                               cache_dir=str(tmp_path / "hf" / "cache"))
    assert len(dataset) == 24
    row = dataset[0]
    assert row["text"] == f"a {row['color']} square"
    assert row["image"].size == (32, 32)
    assert all(name.endswith(".jpg") for name in os.listdir(out / "images"))


@WEBDATASET_LEAKS
@pytest.mark.parametrize("sink_cls", [WebDatasetSink, ImageFolderSink])
def test_rows_without_an_image_are_counted_and_warned_of(store_table, tmp_path, sink_cls):
    """An export of 12 rows wrote 6 and said nothing: the other 6 had no image (blend probe)."""
    from curate_export.sinks import ExportWarning

    store, table = store_table
    with pytest.warns(ExportWarning, match=r"left out 1 of 25 rows: they have no image"):
        facts, _ = write(sink_cls, table, tmp_path, store)
    assert facts["rows"] == 24 and facts["rows_without_image"] == 1
    (tmp_path / "empty").mkdir()
    with pytest.warns(ExportWarning, match="holds no rows"):
        facts, _ = write(sink_cls, table.head(0), tmp_path / "empty", store)
    assert facts["rows"] == 0


@WEBDATASET_LEAKS
@pytest.mark.filterwarnings("ignore::curate_export.sinks.ExportWarning")
@pytest.mark.parametrize("sink_cls", [WebDatasetSink, ImageFolderSink])
def test_dates_times_and_bytes_in_metadata_are_written_as_text(store_table, tmp_path, sink_cls):
    """A crawl date in `metadata` failed the export (date is not JSON serializable) after every
    step had run (blend probe)."""
    import datetime as dt

    store, table = store_table
    table = table.with_columns(pl.lit(dt.date(2020, 1, 2)).alias("day"),
                               pl.lit(dt.datetime(2020, 1, 2, 3, 4, 5)).alias("at"), pl.lit(b"\x00\x01").alias("raw"))
    _, out = write(sink_cls, table, tmp_path, store, metadata=["day", "at", "raw"])
    if sink_cls is ImageFolderSink:
        record = json.loads((out / "metadata.jsonl").read_text().splitlines()[0])
    else:
        import tarfile

        with tarfile.open(out / "00000.tar") as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(".json"))
            record = json.loads(tar.extractfile(member).read())
    assert (record["day"], record["at"], record["raw"]) == ("2020-01-02", "2020-01-02T03:04:05", "AAE=")


@WEBDATASET_LEAKS
@pytest.mark.filterwarnings("ignore::curate_export.sinks.ExportWarning")
def test_each_copy_says_which_candidate_its_text_is(store_table, tmp_path):
    import tarfile

    store, table = store_table
    _, out = write(WebDatasetSink, table, tmp_path, store, repeats=3, seed=1)
    texts: dict[str, bytes] = {}
    with tarfile.open(out / "00000.tar") as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            key, ext = member.name.split(".", 1)
            if ext == "txt":
                texts[key] = data
            elif ext == "json":
                meta = json.loads(data)
                assert meta["captions"][meta["text_index"]].encode() == texts[key]

