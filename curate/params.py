"""Base model for every plugin's parameters: unknown keys are errors, values are checked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    """Parameters of a step, source, sink or executor.

    ``extra="forbid"`` makes a typo (``min_scor``) an error instead of a silently ignored key.
    Mark a field ``json_schema_extra={"fingerprint": False}`` when changing it cannot change the
    output (batch sizes, worker counts), so tuning it does not invalidate the cache.
    """

    # defer_build: a class's validator is built when it is first used, not when its plugin
    # registers it; every run registers ~40 params classes and uses a handful.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, defer_build=True)

    def fingerprint_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            if isinstance(extra, dict) and extra.get("fingerprint") is False:
                data.pop(name, None)
        return data


StepParams = Params
