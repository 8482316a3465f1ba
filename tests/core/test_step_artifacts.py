"""A table step writes its artifacts into ``<fingerprint>.partial``, which the engine renames when
the step is done; its ``summary`` runs after that, and ``ctx.artifacts`` then names the published
folder. Before, a table step alone saw the ``.partial`` folder that was gone by then, and one heading
a fused group summed up before the rename: a path it recorded named a folder that did not last."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.hookspecs import hookimpl
from curate.step import Step
from curate.testing import run_spec
from tests.conftest import sample_table

MADE = "made.txt"


class RecordsArtifacts(Step):
    name = "records_artifacts"
    scope = "table"

    def process_table(self, table, ctx):
        (ctx.artifacts / MADE).write_text("x")
        yield table.scan().collect()

    def summary(self, ctx):
        return {"artifacts": str(ctx.artifacts), "made": (ctx.artifacts / MADE).exists()}


class ArtifactSteps:
    @hookimpl
    def curate_register_steps(self):
        return [RecordsArtifacts]


@pytest.mark.parametrize("fuse", [False, True], ids=["alone", "heading_a_group"])
def test_a_table_steps_summary_sees_its_artifacts_where_they_are_published(pm, register_plugin, tmp_path, fuse):
    register_plugin(ArtifactSteps(), "artifact_steps")
    spec = {"name": "artifacts", "source": {"path": "data.parquet"},
            "steps": [{"step": "records_artifacts", "name": "writer"},
                      {"step": "filter", "params": {"where": "length(url) > 0", "reason": "no_url"}}],
            "run": {"shard_size": 10, "fuse": fuse, "fuse_heads": fuse, "report": False}}
    manifest = run_spec(spec, tmp_path, tables={"data.parquet": sample_table(25)}, pm=pm)
    (record,) = [r for r in manifest["steps"] if r["label"] == "writer"]
    assert ("fused" in record) is fuse
    assert record["summary"] == {"artifacts": str(Path(record["path"]) / "artifacts"), "made": True}
    assert (Path(record["summary"]["artifacts"]) / MADE).read_text() == "x"
    assert not Path(record["path"] + ".partial").exists()
