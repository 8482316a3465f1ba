"""What ``curate inspect`` knows of a run directory besides its manifest, shared with
:class:`curate.Run`: whether its stored files are still as stored (read whole with ``verify``),
whether a live process holds it, and the state that follows ("stopped" for a run its manifest
says is running that nothing runs: SIGKILL, out of memory, its machine gone)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunFacts:
    manifest: dict[str, Any]
    damaged: list[tuple[str, str]]  # (step label, what is wrong) of each finished step not as stored
    lock_held: bool
    verified: bool

    @property
    def state(self) -> Any:
        return state(self.manifest, self.lock_held)

    def as_json(self) -> dict[str, Any]:
        """``curate inspect --json``: the manifest, and what the text view says besides it under
        keys the manifest does not use ("status" stays the manifest's: a run killed by SIGKILL or
        out of memory says "running" there for good)."""
        return {**self.manifest, "damaged": [{"step": label, "problem": problem} for label, problem in self.damaged],
                "verified": self.verified, "lock_held": self.lock_held, "state": self.state}


def run_facts(run_dir: Path, verify: bool = False) -> RunFacts:
    """``run_dir``'s manifest (a RunDirError or UsageError where there is none to read) and its facts."""
    from curate.lock import held
    from curate.runstore import read_manifest
    from curate.storecheck import stored_problems

    manifest = read_manifest(Path(run_dir))
    return RunFacts(manifest, stored_problems(manifest, verify), held(Path(run_dir)), verify)


def state(manifest: dict[str, Any], locked: bool) -> Any:
    """The manifest's status, but "stopped" for a run it says is running that no live process
    holds: one killed (SIGKILL, out of memory, its machine gone) never wrote that it stopped."""
    status = manifest.get("status")
    return "stopped" if status == "running" and not locked else status
