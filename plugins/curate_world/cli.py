"""``curate world generate`` and ``curate world serve``. Heavy imports happen inside the commands,
because ``curate --help`` loads every plugin."""

from __future__ import annotations

import json

import click

from curate.display import echo


@click.group("world")
def world() -> None:
    """Generate and serve an offline world of image–alt-text pairs with ground truth."""


def _rate(text: str) -> dict[str, float]:
    """Parse "partial=0.2,empty=0.05" into a dict (the CLI form of noise_rates / fault_weights)."""
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        try:
            result[name.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"expected NAME=NUMBER, got {item!r}") from None
    return result


def web_style_params(preset: str, rate: float | None, weights: str | None) -> dict[str, object]:
    """World parameters of the --web-style preset, with --web-style-rate / --web-style-weights on top."""
    from curate_world.webstyle import WEB_MIX_RATE

    params: dict[str, object] = {}
    if rate is not None or preset == "web":
        params["web_style_rate"] = rate if rate is not None else WEB_MIX_RATE
    if weights is not None:
        params["web_style_weights"] = _rate(weights)
    return params


@world.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n", default=5000, show_default=True, help="Rows in world.parquet.")
@click.option("--seed", default=0, show_default=True)
@click.option("--image-size", default=64, show_default=True, help="Side of an image in pixels.")
@click.option("--image-format", type=click.Choice(["jpeg", "png"]), default="jpeg", show_default=True)
@click.option("--fault-rate", default=0.2, show_default=True, help="Share of URLs whose download goes wrong.")
@click.option(
    "--noise-rates",
    default=None,
    help="e.g. partial=0.2,wrong_attribute=0.1,empty=0.05 (faithful gets the rest).",
)
@click.option("--fault-weights", default=None, help="Relative weights of fault kinds, e.g. 404=2,slow=1.")
@click.option(
    "--dup-fraction", default=0.1, show_default=True, help="Share of rows that are planted near-duplicates."
)
@click.option(
    "--entity-rate", default=0.3, show_default=True, help="Share of scenes showing an entity's logo."
)
@click.option(
    "--realign-fraction", default=0.2, show_default=True,
    help="Share of rows with an annotator-realigned caption (realigned.parquet: the captioner's stage 2 data).",
)
@click.option(
    "--eval-n", default=None, type=int, help="Rows in eval.parquet [default: min(1000, max(50, n/5))]."
)
@click.option(
    "--concept-skew", default=None, type=float,
    help="Long tail of shapes, colors, entities: the k-th is drawn with weight 1/k^S [default: uniform].",
)
@click.option(
    "--web-style", type=click.Choice(["off", "web"]), default="off", show_default=True,
    help="Preset of web-styled alt-texts: 'web' is the web mix (every style, on half the rows).",
)
@click.option(
    "--web-style-rate", default=None, type=click.FloatRange(0.0, 1.0),
    help="Share of rows with web-styled alt-text [default: 0, or 0.5 with --web-style web].",
)
@click.option(
    "--web-style-weights", default=None,
    help="Relative weights of web styles, e.g. all_caps=2,synonym=1,truncation=0.5 (others 0) [default: all 1].",
)
@click.option(
    "--scenes", type=click.Choice(["any", "train", "heldout"]), default="any", show_default=True,
    help="Part of the scene space to draw from: 'train' for training worlds, 'heldout' for evaluation "
    "(never a scene of a train world, nor one the shipped world models saw).",
)
@click.option("--overwrite", is_flag=True, help="Replace a different world already in OUT.")
def generate(
    out: str,
    overwrite: bool,
    noise_rates: str | None,
    fault_weights: str | None,
    web_style: str,
    web_style_rate: float | None,
    web_style_weights: str | None,
    **params: object,
) -> None:
    """Write a world into OUT: images/, world.parquet, eval.parquet, realigned.parquet, world.json."""
    import time

    from curate_world.generate import generate_world

    if noise_rates is not None:
        params["noise_rates"] = _rate(noise_rates)
    if fault_weights is not None:
        params["fault_weights"] = _rate(fault_weights)
    params.update(web_style_params(web_style, web_style_rate, web_style_weights))
    started = time.perf_counter()
    result = generate_world(out, overwrite=overwrite, **params)  # type: ignore[arg-type]
    echo(f"world in {result.dir} ({time.perf_counter() - started:.1f}s)")
    echo(json.dumps(result.counts, indent=2), lines=True)


@world.command()
@click.argument("world_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=0, show_default=True, help="0 picks a free port.")
@click.option("--slow-seconds", default=3.0, show_default=True, help="How long 'slow' URLs stall.")
@click.option("--verbose", is_flag=True, help="Log every request.")
def serve(world_dir: str, host: str, port: int, slow_seconds: float, verbose: bool) -> None:
    """Serve WORLD_DIR over HTTP with its faults until Ctrl-C."""
    import logging

    from curate_world.server import run_server

    from curate.display import VisibleFormatter

    if verbose:  # each request line as the client sent it: its control characters shown, not run
        handler = logging.StreamHandler()
        handler.setFormatter(VisibleFormatter("%(message)s"))
        logging.basicConfig(level=logging.INFO, handlers=[handler])

    def ready(server) -> None:  # type: ignore[no-untyped-def]
        echo("serving; Ctrl-C stops", err=True)
        echo(server.base_url)  # last: scripts wait for this line

    run_server(world_dir, host, port, slow_seconds, verbose, on_ready=ready)
