"""The web is adversarial: endless, dripping, lying, compressed, verbose and exploding responses
among healthy ones.
The step ends within its time bound, its processes stay within 1 GB of a healthy run's memory,
every row has a status, every healthy row is stored, and nothing is left in the system's temp dir."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pytest
from curate_download.worker import REFUSED

from tests.download.conftest import run_download
from tests.download.hostile import AS_SHOWN, check_as_shown, deep_png, serve_hostile
from tests.download.processes import peak_rss

pytestmark = [pytest.mark.network, pytest.mark.slow]

TIMEOUT = 8.0  # generous: on a loaded machine img2dataset's start-up alone takes seconds
THREADS = 16
HEALTHY_ROWS = 40
HOSTILE = {  # route -> (how many rows, the status each must get)
    "endless": (2, "too_large"),
    "endless-chunked": (2, "too_large"),
    "huge": (1, "too_large"),
    "drip": (2, "failed_to_download"),
    "drip-headers": (2, "failed_to_download"),
    "slow-redirect/12": (2, "failed_to_download"),
    "bomb": (2, "image_too_large"),
    "deep/7000": (2, "image_too_large"),  # 49 MP, within max_image_area: refused for its decoding memory
    "lie-long": (2, "failed_to_download"),
    "lie-short": (2, "failed_to_resize"),
    "loop": (1, "failed_to_download"),
    "chain": (1, "failed_to_download"),
    "no-status-line": (1, "failed_to_download"),
    "hdr-huge": (1, "image_too_large"),
    "gzip-bomb": (1, "failed_to_resize"),  # 10 MB as sent: never inflated, so not an image
    "long-reason": (1, "failed_to_download"),
    "long-location": (1, "refused"),  # a redirect to gopher: is not followed
}
GIB = 2**30


def hostile_table(base_url: str) -> pl.DataFrame:
    urls, kinds = [], []
    for index in range(HEALTHY_ROWS):
        urls.append(f"{base_url}/ok/h{index}.png")
        kinds.append("ok")
    for route, (count, _) in HOSTILE.items():
        for index in range(count):
            urls.append(f"{base_url}/{route}/r{index}" + (".png" if route == "bomb" else ""))
            kinds.append(route)
    return pl.DataFrame({"url": urls, "alt_text": [f"row {i}" for i in range(len(urls))], "kind": kinds})


@pytest.fixture
def private_system_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temp dir, for this test: a folder nobody else writes to."""
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(system_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return system_tmp


def test_hostile_host(tmp_path: Path, private_system_tmp: Path) -> None:
    params = {"allow_private_networks": True, "timeout": TIMEOUT, "threads": THREADS, "image_size": 32,
              "retries": 0}  # the bound below is for one attempt per row
    opencv_before = set(Path("/tmp").glob("__opencv_temp*"))  # OpenCV's temp files ignore TMPDIR
    deep_png(7000)  # built before the run (cached): built inside the request, under load, it ran past the timeout
    with serve_hostile() as host:
        table = hostile_table(host.base_url)
        healthy = table.with_columns(pl.format("{}/ok/g{}.png", pl.lit(host.base_url), pl.int_range(pl.len())).alias("url"))
        as_shown = [f"{host.base_url}/{path}" for path in AS_SHOWN]  # 16-bit, EXIF-rotated: healthy too
        healthy = pl.concat([healthy, pl.DataFrame({"url": as_shown, "alt_text": list(AS_SHOWN),
                                                    "kind": "ok"})])
        with peak_rss() as healthy_peak:
            healthy_manifest, baseline = run_download(tmp_path / "healthy", healthy, params)
        with peak_rss() as hostile_peak:
            manifest, rows = run_download(tmp_path / "hostile", table, params)
    seconds = next(r for r in manifest["steps"] if r["label"] == "download")["seconds"]
    # img2dataset's start-up and the healthy rows' work, as this machine's load makes them now
    healthy_seconds = next(r for r in healthy_manifest["steps"] if r["label"] == "download")["seconds"]
    assert set(baseline["status"]) == {"success"}
    check_as_shown(baseline, healthy_manifest["store_dir"], host.base_url)

    # every hostile row is cut at TIMEOUT: THREADS at a time, over what a healthy run takes here
    bound = healthy_seconds + (table.height / THREADS + 1) * TIMEOUT
    print(f"\nhostile run: {seconds:.1f} s (bound {bound:.1f} s); peak RSS of the worker tree "
          f"{hostile_peak[0] / GIB:.2f} GiB vs healthy {healthy_peak[0] / GIB:.2f} GiB")
    print(rows.group_by("kind", "status").agg(pl.col("error_message").first()).sort("kind"))
    assert seconds <= bound
    assert hostile_peak[0] <= healthy_peak[0] + GIB, (hostile_peak, healthy_peak)

    assert rows.height == table.height and rows["status"].null_count() == 0
    expected = {"ok": "success"} | {route: status for route, (_, status) in HOSTILE.items()}
    got = dict(rows.group_by("kind").agg(pl.col("status").unique()).iter_rows())
    assert got == {kind: [status] for kind, status in expected.items()}
    assert rows.filter(pl.col("status") != "success")["error_message"].null_count() == 0
    first = dict(rows.group_by("kind").agg(pl.col("error_message").first()).iter_rows())
    assert "max_bytes" in first["endless"] and "max_bytes" in first["huge"]
    assert "30000x30000" in first["bomb"] and "max_image_area" in first["bomb"]
    assert "7000x7000 pixels of 4 x 16-bit samples" in first["deep/7000"] and "max_decode_bytes" in first["deep/7000"]
    for kind in ("drip", "drip-headers", "slow-redirect/12"):
        assert "timed out" in first[kind], (kind, first[kind])
    assert "Content-Length" in first["lie-long"]
    assert "redirect" in first["loop"] and "redirect" in first["chain"]
    assert first["no-status-line"].startswith("the server sent no HTTP status line")
    assert "max_image_area" in first["hdr-huge"] and "CV_IO" not in first["hdr-huge"]
    # a server's 60,000-character reason phrase is not shown; a Location is cut to a line's worth
    assert first["long-reason"] == "HTTP Error 404: Not Found"
    assert first["long-location"].startswith(f"{REFUSED}: a redirect (HTTP 302) to a 'gopher:' URL is not")
    assert "(Location: gopher://example.com/aaa" in first["long-location"]
    assert rows["error_message"].str.len_chars().max() <= 1100
    assert not rows["error_message"].str.contains("\x1b", literal=True).any()
    stored = rows.filter(pl.col("kind") == "ok")
    assert stored["image"].null_count() == 0 and stored.height == HEALTHY_ROWS

    # nothing of either run stays outside its run directory (OpenCV left the refused HDR in /tmp)
    assert list(private_system_tmp.iterdir()) == []
    assert set(Path("/tmp").glob("__opencv_temp*")) <= opencv_before
    assert not list((tmp_path / "hostile").glob("run/store/*/artifacts/shard-*/tmp")), "the worker's temp dir stayed"
