"""A spec run with --untrusted reads and writes a bucket (moto on loopback) only under a prefix the
user allows with --allow-remote: the user's credentials open every bucket they can reach, and a
stranger's spec named any of them."""

from __future__ import annotations

import io

import polars as pl
import pytest
import yaml

from tests.core.conftest import curate_main  # noqa: F401
from tests.storage.conftest import S3

pytestmark = pytest.mark.network


def spec(s3: S3, source: str) -> str:
    return yaml.safe_dump({"name": "stranger", "source": {"format": "parquet", "path": s3.url(source)},
                           "steps": [{"step": "filter", "params": {"where": "alt_text IS NOT NULL"}}],
                           "outputs": [{"format": "parquet", "path": s3.url("shared/out/table.parquet")}],
                           "run": {"dir": "run", "report": False}})


def test_an_untrusted_run_uses_only_the_allowed_prefix_of_a_bucket(curate_main, workdir, s3: S3):
    """The commands in this process (``curate_main``, with the s3 fixture's environment): a
    subprocess each only paid for its imports again."""
    buffer = io.BytesIO()
    pl.DataFrame({"url": ["https://a/1.jpg", "https://a/2.jpg"], "alt_text": ["one", None]}).write_parquet(buffer)
    for key in ("shared/in.parquet", "private/in.parquet"):
        s3.put(key, buffer.getvalue())
    (workdir / "spec.yaml").write_text(spec(s3, "shared/in.parquet"))
    refused = curate_main("run", "spec.yaml", "--untrusted", "--quiet")
    assert refused.code == 2, refused
    assert f"source.path: '{s3.url('shared/in.parquet')}' is in object storage" in refused.stderr
    assert f"outputs[0].path: '{s3.url('shared/out/table.parquet')}' is in object storage" in refused.stderr
    assert s3.keys("shared/out") == []

    allow = s3.url("shared")
    ran = curate_main("run", "spec.yaml", "--untrusted", "--allow-remote", allow, "--quiet")
    assert ran.code == 0, ran
    assert pl.read_parquet(io.BytesIO(s3.get("shared/out/table.parquet")))["alt_text"].to_list() == ["one"]

    (workdir / "spec.yaml").write_text(spec(s3, "private/in.parquet"))
    other = curate_main("validate", "spec.yaml", "--untrusted", "--allow-remote", allow)
    assert other.code == 2, other
    assert f"source.path: '{s3.url('private/in.parquet')}' is in object storage" in other.stderr
    assert "outputs[0]" not in other.stderr
    assert curate_main("validate", "spec.yaml").code == 0  # the user's own spec: any bucket
