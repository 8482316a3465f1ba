"""A folder source lists the data below it and never curate's own folders: this run's directory
and store (wherever they lie below it), and any other run directory (a folder whose manifest names
a ``spec_hash``); a glob skips this run's folders only."""

from __future__ import annotations

import json
from pathlib import Path

from curate_basics.sources import ParquetSource
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.source import SourceContext

NAMES = st.sampled_from(["a", "b", "runs", "data", "store", "x1"])
FOLDERS = st.lists(st.lists(NAMES, min_size=0, max_size=3).map(tuple), min_size=1, max_size=6, unique=True)


@settings(deadline=None)
@given(data_folders=FOLDERS, others=st.lists(st.lists(NAMES, min_size=1, max_size=2).map(tuple), max_size=2),
       run_at=st.lists(NAMES, min_size=1, max_size=2).map(tuple), store_inside=st.booleans(),
       as_glob=st.booleans())
def test_a_listing_reads_the_data_and_none_of_curates_folders(tmp_path_factory, data_folders, others, run_at,
                                                              store_inside, as_glob):
    root = tmp_path_factory.mktemp("src")
    run_dir = root.joinpath(*run_at, "run")
    store = run_dir / "store" if store_inside else root / "cache"
    # curate's own files: this run's, a store elsewhere below the root, other runs' directories
    own = [run_dir / "out.parquet", run_dir / "store" / "s1" / "data" / "shard-00000.parquet",
           store / "s2" / "dropped" / "shard-00000.parquet"]
    other_runs = [root.joinpath(*folder, "old-run") for folder in others]
    for other in other_runs:
        own.append(other / "curated.parquet")
        (other).mkdir(parents=True, exist_ok=True)
        (other / "manifest.json").write_text(json.dumps({"spec_hash": "x", "steps": []}))
    data = [root.joinpath(*folder, f"part-{i}.parquet") for i, folder in enumerate(data_folders)]
    data = [f for f in data if not any(f.is_relative_to(p) for p in [run_dir, store, *other_runs])]
    for path in [*own, *data]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1")
    raw = str(root / "**" / "*.parquet") if as_glob else str(root)
    source = ParquetSource(ParquetSource.Params(), SourceContext(run_dir, root, 0, raw, store=store))
    found = set(source.files())
    if as_glob:  # a pattern names its files: only this run's folders are left out
        expected = {f for f in [*own, *data] if not f.is_relative_to(run_dir) and not f.is_relative_to(store)}
    else:
        expected = set(data)
    assert found == expected
