"""``metadata_balance``: MetaCLIP's balancing, so head entries stop drowning the tail.

Each entry e matched by count(e) rows selects each of its rows with probability
min(1, t / count(e)), independently; a row is kept when any of its entries selects it
(``metaclip/metaclip1/balancing.py``). An entry under t keeps all its rows; one above keeps
about t. A selection is a hash of (seed, uid, entry id), so the kept rows do not depend on the
shard layout, the executor or the order of rows.

Memory: the counts are one DuckDB aggregate over the input shards (spills past
``run.memory_limit``); the rows are then read and decided one shard at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field, PositiveInt, field_validator

from curate.duck import create_input_view, quote
from curate.hashing import uniform_sql
from curate.params import Params
from curate.schema import DROP_REASON, UID, Schema
from curate.step import Step, StepContext, TableInput
from curate_metadata.entries import MetadataError
from curate_metadata.match import ENTRIES_ARTIFACT

COUNTS_ARTIFACT = "entry_counts.parquet"
NO_ENTRIES = "no_metadata_entries"
SALT = "metadata_balance"
TOP = 10
DEFAULT = "default"  # the key of a per-language t that applies to every language not named


class MetadataBalanceParams(Params):
    t: PositiveInt | dict[str, PositiveInt] = Field(
        20_000, description="entries matched by more rows are sub-sampled to about t rows (MetaCLIP: 20k for "
        "400M pairs, 170k for 2.5B); or per language of the entry list: {en: 20000, de: 5000, default: 1000}")
    column: str = Field("metadata_entries", description="the list column of entry ids (metadata_match's output)")
    seed: int | None = Field(None, description="default: the run's seed")

    @field_validator("t")
    @classmethod
    def _some_language(cls, value: Any) -> Any:
        if isinstance(value, dict) and not value:
            raise ValueError("a per-language t needs at least one language (or 'default'); "
                             "or give one number for every language")
        return value


def thresholds(t: int | dict[str, int], names: pl.DataFrame | None) -> pl.DataFrame:
    """entry_id, t: each entry's threshold from its language's t (MetaCLIP 2).

    ``names`` is metadata_match's list (entry_id, entry, language). Errors say which languages the
    list has when t names another, or when a language has no t and there is no default.
    """
    assert isinstance(t, dict)
    languages = sorted(set(names["language"].drop_nulls().to_list())) if names is not None else []
    if not languages:
        raise MetadataError("t is given per language, but the metadata list has no languages"
                            + (" (no metadata_match upstream)" if names is None else ""),
                            "give metadata_match a table of entries with a language column and set its "
                            "'language', or give t as one number")
    present = ", ".join(languages)
    unknown = sorted(key for key in t if key != DEFAULT and key not in languages)
    if unknown:
        raise MetadataError(f"t names language(s) {', '.join(unknown)}, which the metadata list does not have "
                            f"(its languages: {present})", f"use languages of the list, or '{DEFAULT}'")
    if DEFAULT not in t:
        missing = sorted(set(languages) - set(t)) + (["(none)"] if names["language"].null_count() else [])
        if missing:
            raise MetadataError(f"t has no value for language(s) {', '.join(missing)} of the metadata list "
                                f"(its languages: {present})", f"add them to t, or add '{DEFAULT}: <t>'")
    per_language = pl.DataFrame({"language": list(t), "t": list(t.values())},
                                schema={"language": pl.Utf8, "t": pl.Int64})
    return (names.select("entry_id", "language").join(per_language, on="language", how="left")
            .select("entry_id", pl.col("t").fill_null(pl.lit(t.get(DEFAULT), pl.Int64))))


def selection_sql(uid: str, entry: str, seed: int) -> str:
    """Entry ``entry`` of row ``uid`` draws a uniform number: the same as
    ``curate.hashing.uniform(uid + ":" + str(entry), seed, salt="metadata_balance")``."""
    return uniform_sql(f"{uid} || ':' || CAST({entry} AS VARCHAR)", seed, salt=SALT)


class MetadataBalance(Step):
    name = "metadata_balance"
    description = "sub-sample rows of head metadata entries to about t each (MetaCLIP)"
    scope = "table"
    drops_rows = True
    random = True
    Params = MetadataBalanceParams

    def input_columns(self) -> Schema:
        return {UID: pl.Utf8, self.params.column: pl.List(pl.Int64)}

    def plan_check(self, input_schema: Schema) -> list[str]:
        if input_schema.get(self.params.column) == pl.Null:  # `NULL AS metadata_entries` passed the column check
            return [f"column '{self.params.column}' is all null (type Null) here: it holds no entry ids; "
                    "a metadata_match step before this one writes them"]
        return []

    def plan_check_upstream(self, upstream: list[Step]) -> list[str]:
        """A per-language t against the list of the nearest metadata_match: at plan time, so
        ``curate validate`` names the list's languages (raises MetadataError)."""
        if not isinstance(self.params.t, dict):
            return []
        from curate_metadata.match import MetadataMatch

        match = next((step for step in reversed(upstream) if isinstance(step, MetadataMatch)), None)
        try:
            names = match._entries().frame() if match is not None else None
        except MetadataError:
            return []  # metadata_match reports its own list's problem
        thresholds(self.params.t, names)
        return []

    def process_table(self, table: TableInput, ctx: StepContext) -> Iterator[pl.DataFrame]:
        p = self.params
        seed = p.seed if p.seed is not None else ctx.seed
        column = quote(p.column)
        self.facts: dict[str, Any] = {}
        names = _upstream_names(ctx)
        per_language = thresholds(p.t, names) if isinstance(p.t, dict) else None
        con = ctx.duckdb()
        try:
            create_input_view(con, table)
            if per_language is None:
                con.execute(f"""
                    CREATE TABLE counts AS
                    SELECT entry_id::BIGINT AS entry_id, count(*)::BIGINT AS count,
                           least(1.0, {p.t} / count(*))::DOUBLE AS probability
                    FROM (SELECT unnest(list_distinct({column})) AS entry_id FROM input) GROUP BY entry_id
                """)
            else:
                con.register("thresholds", per_language)
                con.execute(f"""
                    CREATE TABLE counts AS
                    SELECT m.entry_id::BIGINT AS entry_id, m.count::BIGINT AS count,
                           least(1.0, th.t / m.count)::DOUBLE AS probability, th.t::BIGINT AS t
                    FROM (SELECT entry_id, count(*) AS count
                          FROM (SELECT unnest(list_distinct({column})) AS entry_id FROM input) GROUP BY entry_id) AS m
                    LEFT JOIN thresholds AS th USING (entry_id)
                """)
                con.unregister("thresholds")
                [outside] = con.execute("SELECT min(entry_id), count(*) FROM counts WHERE t IS NULL").fetchall()
                if outside[1]:
                    raise MetadataError(f"{outside[1]} matched entry id(s) (e.g. {outside[0]}) are not in the "
                                        "metadata list, so they have no language for a per-language t",
                                        "balance the output of the metadata_match that wrote the ids")
            kept_counts: list[pl.DataFrame] = []
            rows_in = rows_kept = rows_without = 0
            for path in table.files:
                frame = pl.read_parquet(path)
                if frame.height == 0:
                    continue
                keep, has_entries = self._decide(con, frame, seed)
                rows_in += frame.height
                rows_kept += int(keep.sum())
                rows_without += int((~has_entries).sum())
                reason = (pl.when(pl.Series(keep)).then(pl.lit(None, pl.Utf8))
                          .when(pl.Series(has_entries)).then(pl.lit(self.label))
                          .otherwise(pl.lit(NO_ENTRIES)))
                yield frame.with_columns(reason.alias(DROP_REASON))
                kept_counts.append(_entry_counts(frame.filter(pl.Series(keep)), p.column))
                if len(kept_counts) > 64:  # keep at most ~64 partial tables of ≤ #entries rows
                    kept_counts = [_sum_counts(kept_counts)]
            counts = con.sql("SELECT * FROM counts ORDER BY entry_id").pl()
        finally:
            con.close()
        counts = counts.join(_sum_counts(kept_counts), on="entry_id", how="left").with_columns(
            pl.col("kept").fill_null(0))
        counts = _with_names(counts, names)
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        counts.write_parquet(ctx.artifacts / COUNTS_ARTIFACT)
        self.facts = {"rows_in": rows_in, "rows_kept": rows_kept, "rows_without_entries": rows_without,
                      **distribution_facts(counts, p.t), "counts_file": f"artifacts/{COUNTS_ARTIFACT}"}

    def _decide(self, con: Any, frame: pl.DataFrame, seed: int) -> tuple[pl.Series, pl.Series]:
        """Per row of one shard: kept, and whether it has any entry at all."""
        column = quote(self.params.column)
        narrow = frame.select(pl.col(UID).cast(pl.Utf8), pl.col(self.params.column)).with_row_index("_row")
        con.register("shard", narrow)
        try:
            selected = con.sql(f"""
                SELECT _row, bool_or({selection_sql('uid', 'entry_id', seed)} < c.probability) AS keep
                FROM (SELECT _row, uid, unnest(list_distinct({column})) AS entry_id FROM shard) AS s
                JOIN counts AS c USING (entry_id)
                GROUP BY _row
            """).pl()
        finally:
            con.unregister("shard")
        keep = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
        has_entries = keep.clone()
        if selected.height:
            rows = selected["_row"].cast(pl.Int64)
            keep = keep.scatter(rows.filter(selected["keep"]), True)
            has_entries = has_entries.scatter(rows, True)
        return keep, has_entries

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        return dict(getattr(self, "facts", {}))


def _entry_counts(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    ids = frame.select(pl.col(column).list.unique().explode().drop_nulls().cast(pl.Int64).alias("entry_id"))
    return ids.group_by("entry_id").agg(pl.len().cast(pl.Int64).alias("kept"))


def _sum_counts(parts: list[pl.DataFrame]) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame(schema={"entry_id": pl.Int64, "kept": pl.Int64})
    return pl.concat(parts).group_by("entry_id").agg(pl.col("kept").sum())


NAMES_SCHEMA = {"entry_id": pl.Int64, "entry": pl.Utf8, "language": pl.Utf8}  # what metadata_match writes


def _upstream_names(ctx: StepContext) -> pl.DataFrame | None:
    """The list (entry_id, entry, language) of the nearest upstream metadata_match, if any. The
    store may be someone else's (a cache, a copied run): anything but the table metadata_match
    writes there is an error naming the file (a pipe made the run wait for a writer forever)."""
    from curate.runfiles import NotRegularFile, open_regular

    for step_dir in reversed(list(ctx.extras.get("upstream", {}).values())):
        names = Path(step_dir) / "artifacts" / ENTRIES_ARTIFACT
        if names.exists() or names.is_symlink():
            repair = f"remove that step's store to compute it again: rm -r '{step_dir}'"
            try:
                with open_regular(names) as handle:
                    frame = pl.read_parquet(handle)
            except NotRegularFile as exc:
                raise MetadataError(str(exc), repair) from None
            except (OSError, pl.exceptions.PolarsError) as exc:
                raise MetadataError(f"{names} is not the table metadata_match wrote there ({type(exc).__name__}: "
                                    f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''})",
                                    repair) from None
            if dict(frame.schema) != NAMES_SCHEMA:
                found = ", ".join(f"{name} {dtype}" for name, dtype in frame.schema.items())
                raise MetadataError(f"{names} is not the table metadata_match wrote there: its columns are "
                                    f"{found or 'none'}, not entry_id Int64, entry String, language String", repair)
            return frame
    return None


def _with_names(counts: pl.DataFrame, names: pl.DataFrame | None) -> pl.DataFrame:
    """Entry text and language, when an upstream metadata_match wrote them."""
    if names is not None:
        return counts.join(names, on="entry_id", how="left")
    return counts.with_columns(pl.lit(None, pl.Utf8).alias("entry"), pl.lit(None, pl.Utf8).alias("language"))


def _flatness(counts: pl.Series) -> float | None:
    """Entropy of the entry distribution over log(#entries): 1 when flat, near 0 when one dominates."""
    counts = counts.filter(counts > 0).cast(pl.Float64)
    if counts.len() < 2:
        return None
    p = counts / counts.sum()
    return round(float(-(p * p.log()).sum() / math.log(counts.len())), 4)


def distribution_facts(counts: pl.DataFrame, t: int | dict[str, int]) -> dict[str, Any]:
    """Head (count > t, the entry's language's t when t is per language) and tail before and after
    balancing, for the manifest and the report."""
    threshold = pl.col("t") if isinstance(t, dict) else pl.lit(t)
    head = counts.filter(pl.col("count") > threshold)
    before, after = int(counts["count"].sum()), int(counts["kept"].sum())
    top = counts.sort(["count", "entry_id"], descending=[True, False]).head(TOP)
    facts: dict[str, Any] = {
        "t": t,
        "entries_matched": counts.height,
        "head_entries": head.height,
        "tail_entries": counts.height - head.height,
        "matches_before": before,
        "matches_after": after,
        "head_share_before": round(int(head["count"].sum()) / before, 4) if before else None,
        "head_share_after": round(int(head["kept"].sum()) / after, 4) if after else None,
        # t-independent: how flat the distribution is (1 = every entry equally often) and how much
        # of it the TOP most matched entries hold.
        "entropy_before": _flatness(counts["count"]),
        "entropy_after": _flatness(counts["kept"]),
        "top_share_before": round(int(top["count"].sum()) / before, 4) if before else None,
        "top_share_after": round(int(top["kept"].sum()) / after, 4) if after else None,
        "max_count_before": int(counts["count"].max() or 0),
        "max_count_after": int(counts["kept"].max() or 0),
        "top_entries": [
            {"entry_id": row["entry_id"], "entry": row["entry"], "count": row["count"], "kept": row["kept"]}
            for row in top.iter_rows(named=True)
        ],
    }
    if counts["language"].drop_nulls().len():
        facts["by_language"] = {
            row["language"]: {"entries": row["entries"], "head_entries": row["head"],
                              "matches_before": row["before"], "matches_after": row["after"],
                              **({"t": row["t"]} if isinstance(t, dict) else {})}
            for row in counts.group_by("language").agg(
                pl.len().alias("entries"), (pl.col("count") > threshold).sum().alias("head"),
                pl.col("count").sum().alias("before"), pl.col("kept").sum().alias("after"),
                *([pl.col("t").first()] if isinstance(t, dict) else []),
            ).sort("language").iter_rows(named=True)
        }
    return facts
