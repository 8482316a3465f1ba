"""``metadata_match``: which metadata entries each row's text contains (MetaCLIP's first stage)."""

from __future__ import annotations

from typing import Any

import polars as pl
from pydantic import Field, field_validator, model_validator

from curate.params import PLACE, Params
from curate.schema import DROP_REASON, Schema
from curate.step import Step, StepContext
from curate_metadata.entries import EntryList, LastRead, MetadataError, load_entries
from curate_metadata.matching import Boundary, Matcher, matchable_column

ENTRIES_ARTIFACT = "metadata_entries.parquet"
NO_MATCH = "no_metadata_match"


class MetadataMatchParams(Params):
    columns: list[str] = Field(["alt_text"], min_length=1,
                               description="text columns; a row's entries are those found in any of them")
    entries: str | None = Field(None, description="metadata list: a text file (one entry per line) or a table "
                                "(.parquet/.csv/.tsv/.jsonl) with an entry column; default: the world's concept names",
                                json_schema_extra=PLACE)
    entry_column: str = Field("entry", description="tables: the column holding the entries")
    language_column: str = Field("language", description="tables: the column holding each entry's language")
    language: str | None = Field(None, description="row column with each text's language: a text is matched "
                                 "only against entries of its language (MetaCLIP 2)")
    ignore_case: bool = Field(False, description="compare texts and entries caselessly: Unicode full case "
                              "folding after canonical normalization, as exact_dedup does ('straße' = "
                              "'STRASSE'; no locale's rules: 'İ' folds to 'i\u0307'); MetaCLIP matches "
                              "case-sensitively. Either way texts and entries are compared in Unicode NFC")
    boundary: Boundary = Field("v1", description="v1: entries match as whole space-separated words; "
                               "v2 (MetaCLIP 2): no space needed beside Han, Thai, Lao, Myanmar, Khmer or "
                               "Tibetan characters or punctuation (not kana, not Hangul); unspaced: v2 and "
                               "Japanese kana")
    drop_unmatched: bool = Field(True, description="drop rows that contain no entry (MetaCLIP's rule)")
    output: str = Field("metadata_entries", description="the list column of matched entry ids")

    @field_validator("columns", mode="before")
    @classmethod
    def _one_column(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _output_is_a_new_column(self) -> MetadataMatchParams:
        """The ids go in a column of their own: 'uid', a text column it matches (its texts were
        replaced by the id list without a word) or the language column are refused."""
        taken = {"uid": "the row's id", **{c: "a column it matches" for c in self.columns}}
        if self.language:
            taken[self.language] = "the language column"
        if not self.output.strip():
            raise ValueError("'output' is empty: name the column of matched entry ids (default metadata_entries)")
        if self.output in taken:
            raise ValueError(f"'output' is {self.output!r}, {taken[self.output]}: the ids go in a column of their own "
                             "(default metadata_entries)")
        if self.output.startswith("_"):
            raise ValueError(f"'output' {self.output!r} starts with '_', which curate keeps for its own columns")
        return self


class MetadataMatch(Step):
    """Texts are normalized (NFC, or folded with ignore_case) and spaced as MetaCLIP does, then one
    Aho-Corasick pass (pyahocorasick) per text finds every padded entry in it; ids are sorted and
    unique per row."""

    name = "metadata_match"
    description = "substring-match texts against a metadata list (MetaCLIP), ids per row"
    requires = ("ahocorasick",)
    extra = "metadata"
    drops_rows = True
    version = "2"  # 2: texts and entries compared in NFC; ignore_case is curate.caseless.fold, was str.lower
    uses_model = True  # the automaton: built once per worker
    Params = MetadataMatchParams

    def input_columns(self) -> Schema:
        columns: Schema = {column: pl.Utf8 for column in self.params.columns}
        if self.params.language:
            columns[self.params.language] = pl.Utf8
        return columns

    def output_columns(self) -> Schema:
        return {self.params.output: pl.List(pl.Int64)}

    def _entries(self) -> EntryList:
        """The list, read once per process while the file is unchanged: planning asks for it two to
        four times (a 500k-entry list: ~0.1 s and 30-60 MB a read); the path's checks run each time."""
        p = self.params
        last = self.__dict__.setdefault("_last_read", LastRead())
        return load_entries(p.entries, p.entry_column, p.language_column, need_languages=p.language is not None,
                            untrusted=self.untrusted, last=last)

    def __getstate__(self) -> dict[str, Any]:
        # A worker process (a Ray actor) reads the list itself, once, in setup: the planning
        # process's read is not pickled along with the step.
        return {key: value for key, value in self.__dict__.items() if key != "_last_read"}

    def plan_check(self, input_schema: Schema) -> list[str]:
        try:
            entries = self._entries()
        except MetadataError as exc:
            return [str(exc)]
        return [] if entries.entries else [f"metadata list {entries.origin} has no entries"]

    def fingerprint_extra(self) -> dict[str, Any]:
        try:
            self._planned_digest: str | None = self._entries().digest()
        except MetadataError:
            self._planned_digest = None  # plan_check reports the list's problem, at its place in the spec
        return {"entries": self._planned_digest}  # an edited list re-runs the step

    def setup(self, ctx: StepContext) -> None:
        self.entry_list = self._entries()
        planned = getattr(self, "_planned_digest", None)
        if planned is not None and self.entry_list.digest() != planned:
            # The output is stored under the fingerprint of the list as planned.
            raise MetadataError(f"metadata list {self.entry_list.origin} changed after the run was planned",
                                "run again once the list is written: the step is then planned with its new content")
        p = self.params
        self.matcher = Matcher(self.entry_list.entries, self.entry_list.languages,
                               ignore_case=p.ignore_case, boundary=p.boundary)

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        p = self.params
        languages = table[p.language].to_list() if p.language else None
        spaced = [matchable_column(table[column], p.ignore_case) for column in p.columns]
        ids = pl.Series(p.output, self.matcher.match_columns(spaced, languages, table.height))
        out = table.with_columns(ids.cast(pl.List(pl.Int64)))
        if p.drop_unmatched:
            out = out.with_columns(
                pl.when(ids.list.len() == 0).then(pl.lit(NO_MATCH)).otherwise(pl.lit(None, pl.Utf8))
                .alias(DROP_REASON))
        return out

    def summary(self, ctx: StepContext) -> dict[str, Any]:
        """Writes the list beside the step's output, so balancing can name entries in its counts."""
        entries = getattr(self, "entry_list", None) or self._entries()
        ctx.artifacts.mkdir(parents=True, exist_ok=True)
        entries.frame().write_parquet(ctx.artifacts / ENTRIES_ARTIFACT)
        return {"entries": len(entries.entries), "entries_from": entries.origin,
                "languages": len(set(entries.languages)) if entries.languages else None}
