"""What a re-run of a WebDataset export to S3 sends: 50 shards exported by ``curate run`` to
moto's S3 server on loopback, through a proxy that counts every request and the bytes of its
body. Three runs: the first (everything computed and uploaded), a cached re-run (nothing
changed) and a re-run with a narrower filter (the last shards change or go). Set
``CURATE_BENCH_BASELINE`` to another checkout of curate (an older commit) to run its code on the
same inputs too, first (each tree on a prefix of its own): the ``code`` column says which tree ran.

Loopback has no bandwidth to speak of, so the seconds understate what the bytes cost over a real
link: compare the bytes and requests. Images are random noise (incompressible, as photos are);
their JPEGs pass into the tars as they are.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from benchmarks.measure import REPO_DIR, curate_command, data_dir, measure, python, tmp_dir

SHARDS = 50
SCALES = {"small": (10, 64), "full": (40, 192)}  # samples a shard, image side in pixels
NARROWER_DROP = 0.05  # the narrower filter leaves out the last 5 % of rows
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1"}

SERVER = """
import logging
import sys
from moto.server import ThreadedMotoServer
import boto3

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line a request otherwise
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
endpoint = f"http://{host}:{port}"
boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
print(endpoint, flush=True)
sys.stdin.read()  # until the benchmark closes it
"""


class _Counter(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.lock = threading.Lock()
        self.sent: list[tuple[str, str, int]] = []  # method, path, bytes of the request's body
        super().__init__(("127.0.0.1", 0), _Forward)


class _Forward(BaseHTTPRequestHandler):
    """Passes each request on to moto as it came, and counts it."""

    protocol_version = "HTTP/1.1"
    server: _Counter

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.sent.append((self.command, self.path, length))
        host, port = self.server.upstream.split(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=120)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in ("connection", "content-length", "transfer-encoding", "expect"):
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            answer = upstream.getresponse()
            payload = answer.read()
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in ("connection", "content-length", "transfer-encoding"):
                    self.send_header(name, value)
            said = answer.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(payload))
            self.send_header("Content-Length", said)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            upstream.close()

    do_HEAD = do_PUT = do_POST = do_DELETE = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def _counting(upstream: str) -> Iterator[_Counter]:
    server = _Counter(upstream)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _inputs(per_shard: int, side: int) -> Path:
    """A store tar of ``SHARDS * per_shard`` noise JPEGs and a table naming them (made once)."""
    import numpy as np
    import polars as pl
    from PIL import Image

    folder = data_dir("s3_rerun", f"{SHARDS}x{per_shard}-{side}px")
    table = folder / "data.parquet"
    if table.exists():
        return folder
    rng = np.random.default_rng(0)
    rows = []
    store = folder / "store"
    store.mkdir(exist_ok=True)
    with tarfile.open(store / "00000.tar", "w") as tar:
        for index in range(SHARDS * per_shard):
            uid = f"{index:016x}"
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
            info = tarfile.TarInfo(f"{uid}.jpg")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
            rows.append({"uid": uid, "url": f"https://example.com/{uid}.jpg", "alt_text": f"noise {index}",
                         "image": {"shard": "00000.tar", "key": uid}})
    pl.DataFrame(rows).write_parquet(table)
    return folder


def _spec(inputs: Path, where: str, prefix: str, per_shard: int) -> dict[str, Any]:
    return {"name": "s3-rerun", "source": {"path": str(inputs / "data.parquet")},
            "steps": [{"step": "filter", "params": {"where": where, "reason": "left_out"}}],
            "outputs": [{"format": "webdataset", "path": f"s3://bench/{prefix}",
                         "params": {"caption": "alt_text", "store_dir": str(inputs / "store"),
                                    "samples_per_shard": per_shard}}],
            "run": {"dir": "run", "report": False}}


def _one(tree: Path, work: Path, spec: dict[str, Any], endpoint: str, counter: _Counter, label: str) -> dict[str, Any]:
    (work / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "PYTHONPATH": f"{tree}:{tree / 'plugins'}"}
    with counter.lock:
        first = len(counter.sent)
    result = measure([*curate_command(), "run", "spec.yaml", "--quiet"], cwd=work, env=env)
    with counter.lock:
        sent = counter.sent[first:]
    manifest = json.loads((work / "run" / "manifest.json").read_text())
    output = manifest["outputs"][0]
    puts = [(method, path, size) for method, path, size in sent if method in ("PUT", "POST")]
    return {"run": label, "seconds": round(result.seconds, 2), "output seconds": output.get("seconds"),
            "requests": len(sent), "PUT/POST": len(puts), "DELETE requests": sum(
                1 for method, path, _ in sent if method == "DELETE" or path.endswith("?delete")),
            "MB sent": round(sum(size for _, _, size in sent) / 1e6, 3),
            "objects uploaded": (output.get("published") or {}).get("uploaded_objects", "(all)"),
            "steps cached": all(step.get("cached") for step in manifest["steps"])}


def run(scale: str) -> dict[str, Any]:
    per_shard, side = SCALES[scale]
    inputs = _inputs(per_shard, side)
    rows = SHARDS * per_shard
    narrower = f"uid < '{int(rows * (1 - NARROWER_DROP)):016x}'"
    trees = {"this": REPO_DIR}
    if os.environ.get("CURATE_BENCH_BASELINE"):
        trees = {"baseline": Path(os.environ["CURATE_BENCH_BASELINE"]).resolve(), **trees}
    server = subprocess.Popen([python(), "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, **CREDENTIALS}, text=True)
    table: list[dict[str, Any]] = []
    try:
        assert server.stdout is not None
        moto = server.stdout.readline().strip()
        if not moto:
            raise RuntimeError("moto's server did not start")
        with _counting(moto) as counter:
            endpoint = f"http://127.0.0.1:{counter.server_address[1]}"
            for name, tree in trees.items():
                work = tmp_dir("s3_rerun", name)
                for old in work.glob("*"):
                    subprocess.run(["rm", "-rf", str(old)], check=True)
                prefix = f"{name}-{os.getpid()}"
                for label, where in (("first", "uid IS NOT NULL"), ("cached re-run", "uid IS NOT NULL"),
                                     ("narrower filter", narrower)):
                    row = _one(tree, work, _spec(inputs, where, prefix, per_shard), endpoint, counter, label)
                    table.append({"code": name, **row})
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
    by = {(row["code"], row["run"]): row for row in table}
    if not by[("this", "cached re-run")]["steps cached"]:
        raise RuntimeError("the re-run recomputed its steps: it is not a cached re-run")
    first = by[("this", "first")]
    headline = {f"MB sent, first / cached re-run ({SHARDS} shards)":
                f"{first['MB sent']} / {by[('this', 'cached re-run')]['MB sent']}"}
    if ("baseline", "cached re-run") in by:
        headline["MB sent by a cached re-run, baseline / this"] = \
            f"{by[('baseline', 'cached re-run')]['MB sent']} / {by[('this', 'cached re-run')]['MB sent']}"
    return {"headline": headline, "table": table,
            "notes": [f"{rows} rows, {per_shard} samples a shard, {side}x{side} px noise JPEGs; the narrower filter "
                      f"keeps {int(rows * (1 - NARROWER_DROP))} rows",
                      "moto's server in its own process, the counting proxy in the benchmark's; loopback"]}
