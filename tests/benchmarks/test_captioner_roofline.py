"""The OPT-1.3B-sized decoding benchmark: its roofline arithmetic, and the harness end to end on a
downsized decoder (the full size needs a GPU)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_captioner_roofline import OPT_1_3B, roofline_tokens_per_s

positive = st.floats(1.0, 1e12, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(batch=st.integers(1, 4096), weights=positive, kv=positive, context=st.floats(1.0, 4096.0), bandwidth=positive)
def test_the_roofline_grows_with_the_batch_up_to_the_kv_cache_bound(batch, weights, kv, context, bandwidth):
    now = roofline_tokens_per_s(batch, weights, kv, context, bandwidth)
    more = roofline_tokens_per_s(batch + 1, weights, kv, context, bandwidth)
    assert now <= more * (1 + 1e-9)  # a bigger batch shares the weight reads
    assert now <= bandwidth / (context * kv) * (1 + 1e-9)  # never past reading the KV cache alone
    assert now <= batch * bandwidth / weights * (1 + 1e-9)  # nor past reading the weights once per step


def test_opt_1_3b_has_1_3_billion_parameters():
    size = OPT_1_3B
    layer = 4 * size.hidden**2 + 2 * size.hidden * size.ffn
    assert 1.25e9 < size.layers * layer + size.vocab * size.hidden + 2048 * size.hidden < 1.4e9


@pytest.mark.filterwarnings("ignore")
def test_the_small_scale_runs_anywhere_and_reports_against_the_roofline():
    from benchmarks.bench_captioner_roofline import run

    result = run("small")
    assert [row["batch"] for row in result["table"]] == [1, 4]
    for row in result["table"]:
        assert row["tokens_per_s"] > 0 and row["roofline_tokens_per_s"] > 0
        assert row["of_roofline"] == pytest.approx(row["tokens_per_s"] / row["roofline_tokens_per_s"], rel=0.01, abs=1e-3)
    assert result["copy_bandwidth_gb_per_s"] > 0 and result["decoder"]["parameters"] > 0
