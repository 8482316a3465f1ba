"""Fixtures for the report tests: real runs of the basics steps over a synthetic corpus whose
images live in webdataset tar shards, plus a stand-in ``clip_filter`` step that records its
threshold in the manifest the way the real one does."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import curate_basics
import curate_report
import polars as pl
import pytest
from pydantic import Field

from curate import hookimpl
from curate.params import Params
from curate.plugins import PluginManager
from curate.schema import DROP_REASON, Schema
from curate.step import Step
from curate.testing import run_spec
from tests.report.browser import launch

PALETTE = [(239, 68, 68), (59, 130, 246), (34, 197, 94), (234, 179, 8), (168, 85, 247), (20, 184, 166),
           (249, 115, 22), (236, 72, 153)]
SHAPES = ["circle", "square", "triangle"]


class ClipFilter(Step):
    """Stand-in for the real CLIP filter: keeps rows scoring at least ``threshold``."""

    name = "clip_filter"
    scope = "table"
    drops_rows = True
    reads: ClassVar[Schema] = {"clip_score": pl.Float64}

    class Params(Params):
        threshold: float = Field(0.2, ge=0, le=1)

    def process_table(self, table, ctx):
        frame = table.scan().collect()
        keep = frame["clip_score"] >= self.params.threshold
        yield frame.with_columns(pl.when(keep).then(None).otherwise(pl.lit("clip_score")).alias(DROP_REASON))

    def summary(self, ctx):
        return {"threshold": self.params.threshold, "column": "clip_score"}


class TestSteps:
    @hookimpl
    def curate_register_steps(self):
        return [ClipFilter]


def image_bytes(index: int, size: int = 160) -> bytes:
    """A small picture: a coloured shape on a tinted background, one look per ``index``."""
    from PIL import Image, ImageDraw

    color = PALETTE[index % len(PALETTE)]
    background = tuple(235 - 20 * ((index // len(PALETTE)) % 3) for _ in range(3))
    picture = Image.new("RGB", (size, int(size * 0.75)), background)
    draw = ImageDraw.Draw(picture)
    box = (size * 0.25, size * 0.12, size * 0.75, size * 0.62)
    shape = SHAPES[(index // 3) % len(SHAPES)]
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    else:
        draw.polygon([(size * 0.5, size * 0.1), (size * 0.78, size * 0.62), (size * 0.22, size * 0.62)], fill=color)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=85)
    return out.getvalue()


def write_shard(path: Path, images: int) -> None:
    """A webdataset shard: ``000007.jpg`` next to ``000007.json`` for each sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for index in range(images):
            for name, payload in ((f"{index:06d}.jpg", image_bytes(index)),
                                  (f"{index:06d}.json", b'{"index": %d}' % index)):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))


def corpus(rows: int, images: int, shard: str, groups: int | None = None) -> pl.DataFrame:
    """Rows in ``groups`` duplicate groups (default: one per picture) pointing at ``images`` pictures."""
    colors = ["red", "blue", "green", "yellow", "purple", "teal", "orange", "pink"]
    group = [(i * 7919) % (groups or images) for i in range(rows)]
    index = [g % images for g in group]
    return pl.DataFrame({
        "url": [f"https://example.com/{i}.jpg" for i in range(rows)],
        "alt_text": [f"IMG_{i:04d}.jpg" if i % 11 == 0 else
                     f"a {colors[k % 8]} {SHAPES[(k // 3) % 3]} " + "on a plain background " * (i % 4)
                     for i, k in enumerate(index)],
        "image": [{"shard": shard, "key": f"{k:06d}"} for k in index],
        "image_hash": [f"h{g}" for g in group],
        "width": [160 + (i % 5) * 80 for i in range(rows)],
        "height": [120 + (i % 3) * 90 for i in range(rows)],
        "status": ["success" if i % 13 else ("failed_to_download" if i % 2 else "failed_to_resize")
                   for i in range(rows)],
    }, schema_overrides={"image": pl.Struct({"shard": pl.Utf8, "key": pl.Utf8})})


def curation_spec(report: bool = False, shard_size: int = 100_000) -> dict[str, Any]:
    """Every kind of column the report knows, made with the generic steps."""
    return {
        "name": "report-fixture",
        "source": {"path": "corpus.parquet"},
        "steps": [
            {"step": "filter", "name": "downloaded", "params": {"where": "status = 'success'",
                                                                "reason": "download failed"}},
            {"step": "filter", "name": "alt_length", "params": {"where": "length(alt_text) >= 12",
                                                                "reason": "alt-text too short"}},
            {"step": "exact_dedup", "name": "dedup", "params": {"columns": ["image_hash"]}},
            {"step": "sql", "name": "clip_score", "params": {
                "query": "SELECT *, (hash(uid) % 1000) / 2500.0 AS clip_score FROM input", "per_shard": True}},
            {"step": "clip_filter", "params": {"threshold": 0.12}},
            {"step": "sql", "name": "captions", "params": {"per_shard": True, "query": """
                SELECT *, 'a photo of ' || alt_text AS caption_realigned,
                       CASE WHEN hash(uid) % 10 < 6 THEN 'a photo of ' || alt_text ELSE alt_text END AS caption,
                       CASE WHEN hash(uid) % 10 < 6 THEN 'realigned' ELSE 'original' END AS caption_source
                FROM input"""}},
        ],
        "run": {"report": report, "shard_size": shard_size},
    }


def plugin_manager() -> PluginManager:
    """basics + the report plugin (as its entry point registers it) + the stand-in clip_filter."""
    manager = PluginManager(load_entry_points=False)
    manager.register(curate_basics, name="basics", distribution="curate", version=curate_basics.__version__)
    manager.register(curate_report, name="report", distribution="curate", version=curate_report.__version__)
    manager.register(TestSteps(), name="report-test-steps")
    return manager


def build_run(where: Path, pm: PluginManager, spec: dict[str, Any] | None = None, rows: int = 400,
              images: int = 48, with_images: bool = True, groups: int | None = None) -> Path:
    """Run ``spec`` over a corpus of ``rows`` rows in ``where``; returns the run directory."""
    where.mkdir(parents=True, exist_ok=True)
    if with_images:  # where the download step keeps them: shard paths are relative to the run's store
        write_shard(where / "run" / "store" / "images" / "00000.tar", images)
    corpus(rows, images, "images/00000.tar", groups).write_parquet(where / "corpus.parquet")
    run_spec(spec or curation_spec(), where, pm=pm)
    return where / "run"


GENERIC_SPEC = {
    "name": "generic",
    "source": {"path": "corpus.parquet", "keep": []},
    "steps": [
        {"step": "filter", "params": {"where": "length(alt_text) >= 12", "reason": "short alt-text"}},
        {"step": "exact_dedup", "params": {"columns": ["alt_text"]}},
        {"step": "sample", "params": {"fraction": 0.8}},
    ],
    "run": {"report": False},
}


@pytest.fixture(scope="session")
def report_pm() -> PluginManager:
    return plugin_manager()


@pytest.fixture(scope="session")
def full_run(tmp_path_factory: pytest.TempPathFactory, report_pm: PluginManager) -> Path:
    """A run with every column the report knows: images, sizes, statuses, CLIP scores with a
    recorded threshold, duplicates, realigned and mixed captions. Shared: do not modify it."""
    return build_run(tmp_path_factory.mktemp("full"), report_pm)


@pytest.fixture(scope="session")
def generic_run(tmp_path_factory: pytest.TempPathFactory, report_pm: PluginManager) -> Path:
    """A run of generic steps over url and alt-text only, as most runs look today."""
    return build_run(tmp_path_factory.mktemp("generic"), report_pm, GENERIC_SPEC, with_images=False)


@pytest.fixture
def make_run(workdir: Path, report_pm: PluginManager) -> Callable[..., Path]:
    """A run of its own, for tests that change it."""
    counter = iter(range(1000))

    def make(spec: dict[str, Any] | None = None, **options: Any) -> Path:
        return build_run(workdir / f"case{next(counter)}", report_pm, spec, **options)

    return make


@pytest.fixture(scope="session")
def big_run(tmp_path_factory: pytest.TempPathFactory, report_pm: PluginManager) -> Path:
    """100,000 rows in 60,000 duplicate groups over 200 pictures; 40k rows reach the last step."""
    return build_run(tmp_path_factory.mktemp("big"), report_pm, rows=100_000, images=200, groups=60_000)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Headless Chromium (a Playwright persistent context), one per test module."""
    yield from launch(tmp_path_factory)
