"""Test support for curate and its plugins: hypothesis strategies and step/spec runners.

    from curate.testing import run_step, strategies as cst

    @given(cst.tables())
    def test_my_filter_never_adds_rows(table):
        result = run_step("my_filter", table, params={"threshold": 0.3})
        assert set(result.kept["uid"]) <= set(table["uid"])
"""

from curate.testing import strategies
from curate.testing.runner import StepResult, run_spec, run_step

__all__ = ["StepResult", "run_spec", "run_step", "strategies"]
