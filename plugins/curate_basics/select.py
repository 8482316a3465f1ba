"""``select`` and ``rename``: shape the table's columns (``uid`` always stays)."""

from __future__ import annotations

import polars as pl
from pydantic import Field, model_validator

from curate.params import Params
from curate.schema import UID, Schema
from curate.step import Step, StepContext


class SelectParams(Params):
    columns: list[str] | None = Field(None, description="columns to keep, in this order (uid is always kept)")
    exclude: list[str] | None = Field(None, description="columns to remove")

    @model_validator(mode="after")
    def _one_of(self) -> SelectParams:
        if (self.columns is None) == (self.exclude is None):
            raise ValueError("give exactly one of 'columns' or 'exclude'")
        if self.exclude and UID in self.exclude:
            raise ValueError("'uid' cannot be excluded: every step needs it")
        return self


class Select(Step):
    name = "select"
    thread_safe = True
    description = "keep or remove columns"
    Params = SelectParams

    def input_columns(self) -> Schema:
        return {c: pl.Null for c in (self.params.columns or self.params.exclude or []) if c != UID}

    def output_schema(self, input_schema: Schema) -> Schema:
        if self.params.columns is not None:
            names = [UID] + [c for c in self.params.columns if c != UID]
        else:
            names = [c for c in input_schema if c not in set(self.params.exclude or [])]
        return {n: input_schema[n] for n in names}

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        return table.select(list(self.output_schema(dict(table.schema))))


class RenameParams(Params):
    mapping: dict[str, str] = Field(..., min_length=1, description="old name → new name")

    @model_validator(mode="after")
    def _no_uid(self) -> RenameParams:
        if UID in self.mapping or UID in self.mapping.values():
            raise ValueError("'uid' cannot be renamed or overwritten")
        if len(set(self.mapping.values())) != len(self.mapping):
            raise ValueError("two columns would get the same new name")
        return self


class Rename(Step):
    name = "rename"
    thread_safe = True
    description = "rename columns"
    Params = RenameParams

    def input_columns(self) -> Schema:
        return {c: pl.Null for c in self.params.mapping}

    def plan_check(self, input_schema: Schema) -> list[str]:
        clashes = [n for o, n in self.params.mapping.items() if n in input_schema and n not in self.params.mapping]
        return [f"renaming onto existing column '{c}' would overwrite it" for c in clashes]

    def output_schema(self, input_schema: Schema) -> Schema:
        return {self.params.mapping.get(n, n): d for n, d in input_schema.items()}

    def process_shard(self, table: pl.DataFrame, ctx: StepContext) -> pl.DataFrame:
        return table.rename(self.params.mapping)
