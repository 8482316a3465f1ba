"""An export deletes the stale objects its prefix's listing names; a listing is an object anyone
with write access could have put there, so one naming objects outside the prefix is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from curate import remote
from curate.errors import OutputError
from tests.storage.conftest import S3


def test_a_listing_naming_objects_outside_the_prefix_is_refused(s3: S3, tmp_path: Path) -> None:
    s3.put("victim.txt", b"someone else's")
    s3.put("ours/old.txt", b"old")
    s3.put("ours/_CURATE_EXPORT.json", json.dumps({"files": ["old.txt", "../victim.txt"]}).encode())
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "new.txt").write_text("new")
    (folder / "_CURATE_EXPORT.json").write_text(json.dumps({"files": ["new.txt"]}))
    with pytest.raises(OutputError, match="naming objects outside the prefix"):
        remote.publish(folder, s3.url("ours"), "_CURATE_EXPORT.json")
    assert s3.keys() == ["ours/_CURATE_EXPORT.json", "ours/old.txt", "victim.txt"]
