"""Whether a finished download is worth keeping: one whose servers or network were down fails.

A download that fetched nothing because every host refused the connection or timed out wrote a
status per row and finished: the run exited 0 with an empty output, and the next (cron) run
reused that empty result from the cache. :func:`unreachable_problem` makes such a step fail,
naming the hosts and the kinds of failures; the engine then keeps it unfinished, so the next
run fetches its transient failures again (``Step.result_problem``). Rows that failed for lasting
reasons (404, not an image, refused by the network policy) never count: a spec whose URLs are
partly dead still runs.
"""

from __future__ import annotations

import polars as pl

NOT_FETCHED = ("missing_url", "refused")  # rows the step never tried to fetch
SHOWN = 5  # hosts and kinds of failure named in the message
# scheme://[user@]host[:port]: the host as the URL names it
HOST = r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/?#]*)"


def unreachable_problem(rows: pl.DataFrame, max_share: float | None) -> tuple[str, str] | None:
    """(message, hint) when the rows that failed transiently (``rows["transient"]``; also
    ``url``, ``status`` and ``error_message``) are more than ``max_share`` of the rows the step
    tried to fetch, or when it fetched nothing and some failed transiently; else None."""
    tried = rows.filter(~pl.col("status").is_in(NOT_FETCHED))
    if max_share is None or tried.height == 0:
        return None
    failed = tried.filter(pl.col("transient"))
    fetched = tried.filter(pl.col("status") == "success").height
    share = failed.height / tried.height
    if failed.height == 0 or (share <= max_share and fetched > 0):
        return None
    kinds = _counted(failed.select(_kind().alias("value")))
    hosts = _counted(failed.select(pl.col("url").str.extract(HOST, 1).fill_null("?").alias("value")))
    message = (f"{failed.height:,} of the {tried.height:,} URLs it tried ({share:.0%}) failed for reasons "
               f"another try may fix, and {fetched:,} image(s) were fetched: the image servers or the "
               f"network were likely down. Failures: {kinds}. Hosts: {hosts}")
    hint = ("check that the hosts can be reached from this machine, then run the same command again: "
            "the step is not kept as finished, and its next run fetches those rows again (the others stay "
            "as they are). To keep such a result instead, raise the download step's max_transient_share "
            f"(now {max_share}) or set it to null")
    return message, hint


def nothing_fetched_warning(rows: pl.DataFrame) -> str | None:
    """A warning when the step tried URLs and fetched no image at all (``rows``: ``status`` and
    ``error_message``). Lasting failures (404, not an image) do not fail the step, but a run whose
    every URL is dead should not finish with an empty corpus and no word about it."""
    tried = rows.filter(~pl.col("status").is_in(NOT_FETCHED))
    if tried.height == 0 or tried.filter(pl.col("status") == "success").height:
        return None
    kinds = _counted(tried.select(pl.when(pl.col("error_message").is_null()).then(pl.col("status"))
                                  .otherwise(_kind()).alias("value")))
    return (f"fetched no image: all {tried.height:,} URL(s) it tried failed ({kinds}), so every "
            "later step has no row to work on; check that the URLs still serve images (open one in a "
            "browser or with curl) and that the `url` column holds image links, not page links")


def _kind() -> pl.Expr:
    """A failure's kind: its message without urllib's wrapping, errno and detail in brackets."""
    return (pl.col("error_message").fill_null("").str.strip_prefix("<urlopen error ").str.strip_suffix(">")
            .str.replace(r"^\[Errno -?\d+\] ", "").str.replace(r" \(.*$", "").str.slice(0, 80))


def _counted(values: pl.DataFrame) -> str:
    counts = values.group_by("value").len().sort(["len", "value"], descending=[True, False])
    shown = [f"{value} ({count:,})" for value, count in counts.head(SHOWN).iter_rows()]
    if counts.height > SHOWN:
        shown.append(f"and {counts.height - SHOWN:,} more")
    return ", ".join(shown)
