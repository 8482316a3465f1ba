"""Content-addressed fingerprints: a step's output is reused when its fingerprint is unchanged."""

from __future__ import annotations

import hashlib
import json
from typing import Any

# Bumped when the engine's own output layout changes, so old stores are not misread.
ENGINE_FORMAT = "1"


def fingerprint(**parts: Any) -> str:
    payload = json.dumps({"engine": ENGINE_FORMAT, **parts}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]
