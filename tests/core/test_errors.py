from __future__ import annotations

import pickle

import pytest

from curate.errors import (
    CurateError,
    MissingDependencyError,
    PluginError,
    Problem,
    ResourceError,
    SourceError,
    SpecError,
    StepError,
    UsageError,
)

ERRORS = [
    CurateError("something failed", "try this"),
    SpecError([Problem("steps[1].params.fraction", "must be ≤ 1, got 28", None, 8)], "spec.yaml"),
    SpecError("not a mapping"),
    UsageError("no such run", "pass a run dir"),
    PluginError("two plugins claim 'filter'"),
    MissingDependencyError("step 'clip_score'", ["torch", "open_clip"], "clip"),
    SourceError("no alt_text", "map one"),
    StepError("clip_filter", 3, "CUDA out of memory", "lower batch_size"),
    ResourceError("the run failed: OutOfMemoryException: Out of Memory Error", "raise run.memory_limit"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_survive_pickling_as_they_cross_process_boundaries(error):
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert str(again) == str(error)
    assert (again.message, again.hint, again.exit_code) == (error.message, error.hint, error.exit_code)


def test_exit_codes_say_whose_fault_it_is():
    assert [e.exit_code for e in ERRORS] == [1, 2, 2, 2, 1, 2, 2, 1, 1]


def test_messages_carry_the_fix():
    assert str(MissingDependencyError("step 'clip_score'", ["torch"], "clip")) == (
        "step 'clip_score' needs torch, which is not installed\n  hint: run: pip install 'curate[clip]'")
    assert str(StepError("clip_filter", 3, "boom")) == "step 'clip_filter', shard 3 failed: boom"
    assert str(SpecError([Problem("run.seed", "input should be a valid integer", None, 4)], "s.yaml")) == (
        "1 problem in s.yaml:\n  - s.yaml:4: run.seed: input should be a valid integer")


def test_pip_install_names_the_extra_or_the_modules():
    from curate.errors import MissingDependencyError, pip_install

    assert pip_install("clip") == "pip install 'curate[clip]'"
    assert pip_install(None, ["faiss", "torch"]) == "pip install faiss torch"
    assert MissingDependencyError("step 'x'", ["faiss"], "dedup").hint == "run: pip install 'curate[dedup]'"
