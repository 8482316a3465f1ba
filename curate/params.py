"""Base model for every plugin's parameters: unknown keys are errors, values are checked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

# ``json_schema_extra`` of a param that names a file or folder the plugin reads or writes (or an
# object-storage URL such as ``s3://bucket/prefix``): a spec run with ``--untrusted`` may name only
# one inside the working directory, links resolved, and a URL only under an ``--allow-remote``
# prefix (curate.untrusted). A relative path is relative to where the plugin resolves it: a step's
# to the working directory, a source's to the spec file's folder, an output's to the run directory.
PLACE = {"place": True}


class Params(BaseModel):
    """Parameters of a step, source, sink or executor.

    ``extra="forbid"`` makes a typo (``min_scor``) an error instead of a silently ignored key.
    Mark a field ``json_schema_extra={"fingerprint": False}`` when changing it cannot change the
    output (batch sizes, worker counts), so tuning it does not invalidate the cache, and
    ``json_schema_extra=PLACE`` when it names a file, folder or storage URL (:meth:`places`).
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

    def places(self) -> list[tuple[str, str]]:
        """``(param, path or URL)`` for each file, folder or storage URL these params name (the
        fields marked :data:`PLACE` that are set), for the checks of a spec run with
        ``--untrusted``. Override where a value names a place only sometimes (a model given by a
        shipped name or by its folder) or names more (the files a model folder is read from)."""
        out = []
        for name, field in type(self).model_fields.items():
            extra = field.json_schema_extra
            value = getattr(self, name)
            if isinstance(extra, dict) and extra.get("place") and isinstance(value, str) and value:
                out.append((name, value))
        return out


StepParams = Params
