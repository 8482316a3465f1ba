"""Each built-in section on real runs: present when its data is, absent (not broken) when not."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from curate_report.rundata import RunData
from curate_report.sections import build_all, captions, distributions, duplicates, experiments, funnel
from hypothesis import given
from hypothesis import strategies as st

from curate.runstore import read_manifest
from tests.report.checks import assert_well_formed

JPEG = re.compile(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"')
SVG = re.compile(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')


def build(module, run_dir: Path):
    with RunData(run_dir) as data:
        return module.build(data)


def fragment(html: str) -> str:
    """A section's HTML, wrapped so the page checks apply to it alone."""
    return f"<!DOCTYPE html><html><body>{html}</body></html>"


def test_funnel_lists_every_step_with_its_drop_reasons_and_a_chart(full_run: Path):
    section = build(funnel, full_run)
    manifest = read_manifest(full_run)
    assert section["title"] == "Funnel" and section["order"] == funnel.ORDER
    for record in manifest["steps"]:
        assert f"<b>{record['label']}</b>" in section["html"]
        for reason, count in record["dropped"].items():
            assert f"{reason} {count:,}" in section["html"]
    assert len(SVG.findall(section["html"])) == 1
    assert_well_formed(fragment(section["html"]))


def test_funnel_marks_an_unfinished_step(generic_run: Path):
    manifest = read_manifest(generic_run)
    manifest["steps"][-1].update(complete=False, rows_in=None, rows_out=None, dropped={}, seconds=None)
    with RunData(generic_run, manifest) as data:
        section = funnel.build(data)
    assert "incomplete" in section["html"]


def test_distributions_cover_clip_scores_texts_sizes_and_statuses(full_run: Path):
    html = build(distributions, full_run)["html"]
    assert "<h3>clip_score</h3>" in html
    assert "Threshold 0.12 (from the clip_filter step)" in html
    assert "<h3>Text lengths</h3>" in html
    for column in ("alt_text", "caption", "caption_realigned"):
        assert f"<td>{column}</td>" in html
    assert "<td>caption_source</td>" not in html  # a label, not a text to measure
    assert "<h3>Image sizes</h3>" in html
    assert "<h3>Download status</h3>" in html
    for status in ("success", "failed_to_download", "failed_to_resize"):
        assert f"<td>{status}</td>" in html
    assert len(SVG.findall(html)) == 4
    assert_well_formed(fragment(html))


def test_the_threshold_line_is_drawn_in_the_clip_score_chart(full_run: Path):
    html = build(distributions, full_run)["html"]
    clip_chart = base64.b64decode(SVG.findall(html)[0]).decode()
    assert "threshold 0.12" in clip_chart


def test_distributions_of_a_generic_run_are_alt_text_lengths_only(generic_run: Path):
    html = build(distributions, generic_run)["html"]
    assert "<h3>Text lengths</h3>" in html
    for absent in ("clip_score", "Image sizes", "Download status"):
        assert absent not in html


def test_clip_threshold_comes_from_the_summary_then_the_params():
    steps = [{"step": "clip_filter", "summary": {"threshold": 0.3, "column": "clip_score_b"}, "params": {}}]
    assert distributions.clip_threshold({"steps": steps}) == ("clip_score_b", 0.3)
    steps = [{"step": "clip_filter", "params": {"threshold": 0.25}}]
    assert distributions.clip_threshold({"steps": steps}) == ("clip_score", 0.25)
    assert distributions.clip_threshold({"steps": [{"step": "filter", "params": {"threshold": 1}}]}) is None


def test_duplicate_groups_show_the_largest_clusters_with_the_survivor_marked(full_run: Path):
    html = build(duplicates, full_run)["html"]
    strips = html.count("class='strip'")
    assert 1 <= strips <= duplicates.MAX_CLUSTERS
    assert html.count("tile survivor") == strips  # one survivor per group, first in its strip
    assert html.count("<figure") <= strips * duplicates.MAX_PER_CLUSTER
    thumbnails = JPEG.findall(html)
    assert len(thumbnails) == html.count("<figure")  # every image was found in the tar shard
    assert "no image" not in html
    assert_well_formed(fragment(html))


def test_thumbnails_are_small_jpegs(full_run: Path):
    from PIL import Image

    html = build(duplicates, full_run)["html"]
    for encoded in JPEG.findall(html):
        picture = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert picture.format == "JPEG" and max(picture.size) <= 96


def test_duplicates_without_images_on_disk_show_placeholders(make_run):
    run_dir = make_run(with_images=False)
    html = build(duplicates, run_dir)["html"]
    assert html.count("no image") == html.count("<figure") > 0
    assert not JPEG.findall(html)


def test_duplicates_without_an_image_column_are_text_tiles(generic_run: Path):
    html = build(duplicates, generic_run)["html"]
    assert "class='strip'" in html and "<figure" in html
    assert "no image" not in html and "<img" not in html


def test_no_dedup_step_no_duplicates_section(make_run):
    spec = {"name": "plain", "source": {"path": "corpus.parquet"},
            "steps": [{"step": "filter", "params": {"where": "width > 200"}}], "run": {"report": False}}
    assert build(duplicates, make_run(spec, with_images=False)) is None


def test_caption_story_shows_sampled_cards_and_realized_mix(full_run: Path):
    html = build(captions, full_run)["html"]
    assert "<h3>Mix ratios</h3>" in html
    cards = html.count("class='card'")
    assert 0 < cards <= captions.MAX_CARDS
    for label in ("alt-text", "realigned", "chosen"):
        assert html.count(f"<dt>{label}") == cards
    assert "<td>realigned</td>" in html and "<td>original</td>" in html
    assert len(JPEG.findall(html)) == cards
    assert_well_formed(fragment(html))


def test_caption_story_needs_its_columns(generic_run: Path):
    assert build(captions, generic_run) is None


def test_mix_targets_come_from_a_mix_step_as_shares():
    manifest = {"steps": [{"step": "filter", "label": "f", "params": {}},
                          {"step": "caption_mix", "label": "mix", "params": {"ratios": {"a": 3, "b": 1}}}]}
    assert captions.targets(manifest) == ("mix", {"a": 0.75, "b": 0.25})
    assert captions.targets({"steps": [{"step": "caption_mix", "label": "m", "params": {}}]}) is None


RESULTS = [{"variant": "raw", "accuracy": 0.41, "accuracy_std": 0.02},
           {"variant": "realigned", "accuracy": 0.63, "accuracy_std": 0.01, "notes": {"k": 1}}]


@pytest.mark.parametrize("shape", [
    RESULTS,
    {"task": "zero-shot", "results": RESULTS},
    {"raw": {"accuracy": 0.41, "accuracy_std": 0.02}, "realigned": {"accuracy": 0.63, "accuracy_std": 0.01}},
])
def test_experiments_read_results_json_in_its_shapes(tmp_path: Path, shape):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "results.json").write_text(json.dumps(shape))
    with RunData(tmp_path, {"steps": []}) as data:
        section = experiments.build(data)
    html = section["html"]
    assert "<td>raw</td>" in html and "<td>realigned</td>" in html and '<td class="num">0.63</td>' in html
    chart = base64.b64decode(SVG.findall(html)[0]).decode()
    assert "accuracy per variant" in chart
    assert_well_formed(fragment(html))


def test_experiments_from_the_manifest_and_absent_without_results(tmp_path: Path):
    with RunData(tmp_path, {"steps": [], "experiment": {"results": RESULTS}}) as data:
        assert "<td>realigned</td>" in experiments.build(data)["html"]
    with RunData(tmp_path, {"steps": []}) as data:
        assert experiments.build(data) is None


def test_the_metric_is_accuracy_else_an_acc_column_else_the_first_number():
    assert experiments.choose_metric([{"loss": 1.0, "accuracy": 0.5, "accuracy_std": 0.1}]) == "accuracy"
    assert experiments.choose_metric([{"loss": 1.0, "top1_acc": 0.5}]) == "top1_acc"
    assert experiments.choose_metric([{"name": "a", "loss": 1.0}]) == "loss"
    assert experiments.choose_metric([{"name": "a"}]) is None


def test_built_in_sections_come_in_order(full_run: Path, monkeypatch):
    monkeypatch.setattr(experiments, "load", lambda data: RESULTS)
    sections = build_all(full_run, read_manifest(full_run))
    assert [s["title"] for s in sections] == ["Funnel", "Distributions", "Duplicate groups", "Caption story",
                                              "Experiments"]


def test_a_failing_section_warns_and_the_others_render(generic_run: Path, monkeypatch):
    from curate_report.sections import ReportWarning

    def broken(data):
        raise RuntimeError("boom")

    monkeypatch.setattr(distributions, "build", broken)
    with pytest.warns(ReportWarning, match="'distributions' failed: RuntimeError: boom"):
        sections = build_all(generic_run, read_manifest(generic_run))
    titles = [s["title"] for s in sections]
    assert "Funnel" in titles and "Duplicate groups" in titles
    failed = next(s for s in sections if s["title"] == "Distributions")
    assert "could not be rendered" in failed["html"] and "boom" in failed["html"]


@given(low=st.integers(0, 100_000), extra=st.integers(0, 100_000))
def test_size_bin_edges_strictly_increase_and_cover_the_sizes(low: int, extra: int) -> None:
    # every image of a world run has the same size: equal ends must still give usable bins
    edges = distributions.log_edges(float(low), float(low + extra))
    assert np.all(np.diff(edges) > 0)
    assert edges[0] <= max(low, 1) and edges[-1] >= low + extra
    np.histogram(np.array([low, low + extra], dtype=float), bins=edges)
