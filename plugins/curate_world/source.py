"""``format: world``: generate a world once (cached by its parameters), serve it for the run, and
hand the engine its rows with ground truth alongside.

URLs contain the server's port, and the engine caches the ingested rows by this source's
fingerprint. So by default the port is derived from the world's parameters: the same world gets
the same URLs in every run and cached downstream steps stay valid. When another process holds
that port (a second user, a parallel run of the same world), a free port is taken instead: the run
succeeds, its rows carry that port's URLs and the fingerprint says so (those rows are not mixed
with cached ones of another port). The port is reserved when first needed (at plan time) and held
until the run ends, so the URLs planned are the URLs served. ``base_url`` in the manifest's source
params records it. ``port: 0`` always picks a random free port; a port given is used or refused.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import secrets
import socket
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
from pydantic import Field

from curate import PLACE, Params, Source
from curate_world.errors import WorldError, WorldPortError
from curate_world.params import WORLD_VERSION, WorldParams

# Listening sockets on stable ports that this process reserved and has not served on yet, by
# (host, port): its other sources of the world share them, so their URLs and fingerprints agree;
# other processes find the port taken and use a free one. A session takes its socket out.
_HELD: dict[tuple[str, int], socket.socket] = {}


@atexit.register
def _release_held_ports() -> None:
    for held in _HELD.values():
        held.close()
    _HELD.clear()
# [low, high) of stable ports: below Linux's ephemeral range (32768+), where client sockets live.
STABLE_PORTS = (20000, 32000)
GROUND_TRUTH = {
    "noise_type": pl.Utf8,
    "noise_detail": pl.Utf8,
    "alt_mentions_entity": pl.Boolean,
    "objects": pl.Utf8,
    "description": pl.Utf8,
    "n_objects": pl.Int64,
    "entity": pl.Utf8,
    "background": pl.Utf8,
    "texture": pl.Utf8,
    "scene_id": pl.Int64,
    "dup_group": pl.Int64,
    "fault": pl.Utf8,
    "split": pl.Utf8,
}
# Only in worlds with web styling (web_style_rate > 0), so other worlds' rows stay as they were.
WEB_GROUND_TRUTH = {
    "alt_text_plain": pl.Utf8,
    "styles": pl.List(pl.Utf8),
    "style_detail": pl.Utf8,
    "alt_texts": pl.Utf8,
}
SCHEMA: dict[str, pl.DataType] = {
    "url": pl.Utf8,
    "alt_text": pl.Utf8,
    "world_id": pl.Int64,
    **{f"gt_{name}": dtype for name, dtype in GROUND_TRUTH.items()},
}


LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class WorldSource(Source):
    format = "world"
    description = "a generated world of image–alt-text pairs with ground truth (gt_*), served on loopback"
    version = str(WORLD_VERSION)
    requires = ("PIL",)
    extra = "world"

    class Params(Params, WorldParams):
        dir: str | None = Field(
            None, description="where the world is generated; default .curate/worlds/<world id>",
            json_schema_extra=PLACE,
        )
        host: str = Field("127.0.0.1", description="address the image server listens on")
        port: int | None = Field(
            None, ge=0, le=65535, description="None: stable per world; 0: random free port"
        )
        slow_seconds: float = Field(
            3.0, ge=0.0, le=120.0, description="stall of 'slow' URLs; exceed your download timeout"
        )

    def __init__(self, params: Params, ctx):  # type: ignore[no-untyped-def]
        super().__init__(params, ctx)
        self.world_params = WorldParams(**params.model_dump(include=set(WorldParams.model_fields)))
        self._server = None
        self._nonce = secrets.token_hex(8) if params.port == 0 else None
        self._reserved: socket.socket | None = None  # the default port's socket (see reserve_port)
        self._port: int | None = None

    # -- where ----------------------------------------------------------------------------------
    @property
    def world_dir(self) -> Path:
        if self.params.dir is not None:
            return self.ctx.resolve(self.params.dir)
        return self.ctx.resolve(Path(".curate") / "worlds" / self.world_params.digest())

    @property
    def stable_port(self) -> int:
        low, high = STABLE_PORTS
        return low + int(self.world_params.digest(), 16) % (high - low)

    @property
    def base_url(self) -> str:
        if self._server is not None:
            return self._server.base_url
        if self.params.port == 0:
            raise WorldError(
                "the world source's URLs are not known before its server starts (port: 0 picks a random port)",
                "read rows inside source.session(), or set a fixed port",
            )
        return f"http://{self.params.host}:{self.port}"

    @property
    def port(self) -> int:
        """The port the rows' URLs name: the one given, else the world's stable port unless another
        process holds it, else a free one (reserved on first use, so it stays this run's)."""
        if self._server is not None:
            return int(self._server.port)
        if self.params.port is not None:
            return self.params.port
        if self._port is None:
            from curate_world.server import reserve_port

            key = self._key()
            held = _HELD.get(key)
            if held is None:
                held = reserve_port(self.params.host, self.stable_port)
                if held.getsockname()[1] == self.stable_port:
                    _HELD[key] = held  # this process's other sources of the world share it
                else:  # a free port of this source's alone: closed when the source is dropped
                    weakref.finalize(self, held.close)
                    # its URLs, so its uids and every seeded draw, differ from the stable port's:
                    # nothing cached on the stable port is reused, and nothing said so (blend probe)
                    # (a log record, not a Python warning: parallel test processes share the stable ports)
                    logging.getLogger("curate_world").warning(
                        "world source: port %d, this world's stable port, is in use by another process; serving on %d "
                        "instead, so the rows' URLs and uids (and every draw seeded by uid) differ from a run on the "
                        "stable port, and no step cached there is reused", self.stable_port, held.getsockname()[1])
            self._reserved, self._port = held, int(held.getsockname()[1])
        return self._port

    def _key(self) -> tuple[str, int]:
        return (self.params.host, self.stable_port)

    # -- Source API -----------------------------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[None]:
        from curate_world.generate import generate_world
        from curate_world.server import serve_world

        generate_world(self.world_dir, min_free_disk=self.ctx.min_free_disk, **self.world_params.model_dump())
        port = self.port if self.params.port != 0 else 0
        listening = self._reserved
        if listening is not None and _HELD.get(self._key()) is listening:
            del _HELD[self._key()]  # the server owns it now, and closes it when the run ends
        elif listening is not None and listening.fileno() == -1:
            listening = None  # another source of this world in this process served on it: bind anew
        self._reserved = None
        try:
            with serve_world(self.world_dir, self.params.host, port, self.params.slow_seconds,
                             listening=listening) as server:
                self._server = server
                yield
        except WorldPortError as exc:
            if self._server is None and self.params.port != 0:
                raise WorldError(
                    f"{exc.message}"
                    + (" (source.params.port asks for this port)" if self.params.port else
                       " (another run of this world in this process is serving its port)"),
                    "stop whatever holds the port, or leave source.params.port unset: the world's own port "
                    "is used when free and another one when not",
                ) from None
            raise
        finally:
            self._server = None
            self._port = None
            if listening is not None:
                listening.close()  # already closed by the server unless it failed to start

    def fingerprint(self) -> str:
        payload = {
            "format": self.format,
            "version": str(self.world_params.version),
            "world": self.world_params.model_dump(mode="json"),
            "base_url": self.base_url if self.params.port != 0 else f"random:{self._nonce}",
            "slow_seconds": self.params.slow_seconds,  # changes what a download of a 'slow' URL returns
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def schema(self) -> dict[str, pl.DataType]:
        if self.ctx.untrusted and self.params.host not in LOOPBACK_HOSTS:
            # the server answers whoever reaches that address for as long as the run lasts
            raise WorldError(f"an untrusted spec may not serve the world on {self.params.host!r}: only on loopback "
                             f"({', '.join(LOOPBACK_HOSTS)}), where only this machine reaches it",
                             "remove source.params.host, or review the spec and run it without --untrusted")
        extra = WEB_GROUND_TRUTH if self.world_params.web_styled else {}
        # known without generating anything, so planning stays instant
        return {**SCHEMA, **{f"gt_{name}": dtype for name, dtype in extra.items()}}

    def scan(self) -> Iterator[pl.LazyFrame]:
        from curate_world.tables import WORLD_FILE

        table = self.world_dir / WORLD_FILE
        if not table.exists():
            raise WorldError(
                f"the world is not generated yet ({table} is missing)", "scan() inside source.session()"
            )
        frame = pl.scan_parquet(table)
        truth = {**GROUND_TRUTH, **(WEB_GROUND_TRUTH if self.world_params.web_styled else {})}
        yield frame.select(
            (pl.lit(self.base_url) + pl.col("url_path")).alias("url"),
            pl.col("alt_text"),
            pl.col("world_id"),
            *[pl.col(name).cast(dtype).alias(f"gt_{name}") for name, dtype in truth.items()],
        )

    def describe(self) -> dict[str, object]:
        return {
            "format": self.format,
            "world_dir": str(self.world_dir),
            **self.params.model_dump(mode="json"),
            **({"base_url": self.base_url} if self.params.port != 0 else {}),
        }
