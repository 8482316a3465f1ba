"""The peers benchmark's pipeline in DataTrove, run by the interpreter of its own venv
(``benchmarks/.peers/datatrove``; never a curate dependency).

DataTrove's own pattern for exact dedup, three pipelines on ``LocalPipelineExecutor`` with 2
tasks and 2 workers (stage 2 with ``finder_workers=2`` buckets):

1. ``ParquetReader`` → ``LambdaFilter`` → ``ExactDedupSignature`` (hash of the url)
2. ``ExactFindDedups``
3. ``ParquetReader`` → ``LambdaFilter`` → ``ExactDedupFilter`` → ``ParquetWriter``

The url is the dedup content (``content_getter``); DataTrove keeps, of each group, the document
with the highest ``document_priority`` (a uint16 in [1, 65535]) and, among equal priorities, the
lowest index in its task's stream. Priority ``65535 - part`` (the source file's index) therefore
keeps the first occurrence in input order: files are read in name order, rows in file order.

    python datatrove_job.py SOURCE_DIR OUTPUT_DIR WORK_DIR [--workers 2]

Prints ``{"rows": N}`` (rows written).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

MIN_LENGTH = 3
PART = re.compile(r"part-(\d+)\.parquet$")


def keep(doc) -> bool:
    """The curate spec's ``where`` (bench_peers.FILTER). The reader already skips rows whose
    text is null or empty (DataTrove documents need a text), which the filter drops anyway."""
    url = doc.metadata.get("url")
    return url is not None and url.startswith("http") and len(doc.text) >= MIN_LENGTH


def url_of(doc) -> str:
    return doc.metadata["url"]


def first_file_first(doc) -> int:
    return 65535 - int(PART.search(doc.metadata["file_path"]).group(1))


def url_and_text(self, doc) -> dict:
    return {"url": doc.metadata["url"], "alt_text": doc.text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("output")
    parser.add_argument("work")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from datatrove.executor import LocalPipelineExecutor
    # From the modules, not the packages: datatrove.pipeline.dedup's __init__ imports every dedup
    # (tokenizers, nltk...), which this pipeline does not use.
    from datatrove.pipeline.dedup.exact_dedup import (
        ExactDedupConfig,
        ExactDedupFilter,
        ExactDedupSignature,
        ExactFindDedups,
    )
    from datatrove.pipeline.filters.lambda_filter import LambdaFilter
    from datatrove.pipeline.readers.parquet import ParquetReader
    from datatrove.pipeline.writers.parquet import ParquetWriter

    work, output = Path(args.work), Path(args.output)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(output, ignore_errors=True)
    tasks = workers = args.workers
    config = ExactDedupConfig(content_getter=url_of, document_priority=first_file_first)

    def reader() -> ParquetReader:
        return ParquetReader(args.source, text_key="alt_text", glob_pattern="*.parquet", batch_size=10_000)

    signatures = LocalPipelineExecutor(
        pipeline=[reader(), LambdaFilter(keep),
                  ExactDedupSignature(output_folder=str(work / "signatures"), config=config, finder_workers=tasks)],
        tasks=tasks, workers=workers, logging_dir=str(work / "logs" / "signatures"),
    )
    find = LocalPipelineExecutor(
        pipeline=[ExactFindDedups(data_folder=str(work / "signatures"), output_folder=str(work / "duplicates"),
                                  config=config)],
        tasks=tasks, workers=workers, logging_dir=str(work / "logs" / "find"), depends=signatures,
    )
    write = LocalPipelineExecutor(
        pipeline=[reader(), LambdaFilter(keep), ExactDedupFilter(data_folder=str(work / "duplicates"), config=config),
                  ParquetWriter(str(output), compression="zstd", adapter=url_and_text)],
        tasks=tasks, workers=workers, logging_dir=str(work / "logs" / "write"), depends=find,
    )
    write.run()

    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in sorted(output.glob("*.parquet")))
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
