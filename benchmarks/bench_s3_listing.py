"""Peak memory of listing a bucket prefix of many small objects: ``curate.remote.list_files`` (a
page at a time, keeping each object's URL, size and ETag) against s3fs's ``find(detail=True)``
(what curate called before: the whole listing as a dict of full descriptions), and a process
that only connects (the floor both stand on). Against moto's S3 server on loopback, in a
process of its own; objects are written straight into its store (PUTs over HTTP would take
longer than the listing). Times are moto's more than the client's: about 0.4 s a page of 1000.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from benchmarks.measure import measure, python

KEYS = {"small": 20_000, "full": 100_000}

SERVER = """
import logging
import sys
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer
import boto3

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line a request otherwise
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="big")
backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
for i in range(int(sys.argv[1])):
    backend.put_object("big", f"data/shard-{i // 1000:04d}/part-{i:07d}.parquet", b"x" * 10)
print(endpoint, flush=True)
sys.stdin.read()  # until the benchmark closes it
"""

CLIENT = """
import sys
from curate import remote
url = "s3://big/data/"
fs = remote.filesystem(url)
fs.ls("big", detail=False)  # connected: the floor
if sys.argv[1] == "curate":
    print(len(remote.list_files(url, lambda name: name.endswith(".parquet"))))
elif sys.argv[1] == "s3fs":
    print(len(fs.find(remote.strip(url), detail=True)))
"""

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def run(scale: str) -> dict[str, Any]:
    keys = int(os.environ.get("CURATE_BENCH_ROWS", KEYS[scale]))
    env = {**CREDENTIALS, "CURATE_S3_MAX_OBJECTS": str(keys + 1)}
    server = subprocess.Popen([python(), "-c", SERVER, str(keys)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, **CREDENTIALS}, text=True)
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        if not endpoint:
            raise RuntimeError("moto's server did not start")
        env["AWS_ENDPOINT_URL"] = endpoint
        rows = []
        floor = 0
        for how in ("connect", "curate", "s3fs"):
            result = measure([python(), "-c", CLIENT, how], env=env)
            listed = int(result.stdout.strip() or 0)
            if how != "connect" and listed != keys:
                raise RuntimeError(f"{how} listed {listed} objects of {keys}")
            floor = floor or result.peak_rss_bytes
            extra = result.peak_rss_bytes - floor
            rows.append({"lister": how, "objects": keys, "seconds": round(result.seconds, 1),
                         "peak RSS MB": round(result.peak_rss_bytes / 1e6, 1), "over floor MB": round(extra / 1e6, 1),
                         "bytes an object": round(extra / keys) if how != "connect" else None})
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
    by = {row["lister"]: row for row in rows}
    return {
        "headline": {f"peak memory over the floor, curate / s3fs find, {keys:,} keys":
                     round(by["curate"]["over floor MB"] / max(by["s3fs"]["over floor MB"], 0.1), 2)},
        "table": rows,
        "notes": [f"python {sys.version.split()[0]}; moto's server runs in its own process"],
    }
