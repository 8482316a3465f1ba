"""The multi-seed summary of the blend experiment: means, spreads and paired gaps."""

from __future__ import annotations

import json
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

VARIANTS = ("alt_text", "realigned", "score_gated")


def write_seed(run_dir, seed, accuracies):
    rows = [{"variant": name, "accuracy": acc, "acc_shape": acc / 2, "acc_color": acc * 1.5,
             "accuracy_simple": acc, "i2t_r1": 1.0, "t2i_r1": 2.0, "synthetic_share": 0.5}
            for name, acc in zip(VARIANTS, accuracies, strict=True)]
    out = run_dir / f"seed-{seed}" / "experiment"
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps({"results": rows}))


accuracy = st.floats(0, 100, allow_nan=False).map(lambda v: round(v, 2))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(accuracy, accuracy, accuracy), min_size=1, max_size=6))
def test_summary_means_and_paired_gaps_follow_the_seeds(tmp_path_factory, table):
    from curate_train.seeds import summarize

    run_dir = tmp_path_factory.mktemp("seeds")
    seeds = list(range(len(table)))
    for seed, accuracies in zip(seeds, table, strict=True):
        write_seed(run_dir, seed, accuracies)
    summary = summarize("t", run_dir, seeds)
    rows = {row["variant"]: row for row in summary["results"]}
    for index, name in enumerate(VARIANTS):
        values = [acc[index] for acc in table]
        assert rows[name]["accuracy_by_seed"] == values
        assert abs(rows[name]["accuracy"] - statistics.fmean(values)) <= 0.006
        assert rows[name]["accuracy_std"] >= 0
    gated = rows["score_gated"]
    gaps = [acc[2] - acc[0] for acc in table]
    assert abs(gated["gap_vs_alt_text"] - statistics.fmean(gaps)) <= 0.006
    assert gated["wins_vs_alt_text"] == sum(g > 0 for g in gaps)
    assert "gap_vs_alt_text" not in rows["alt_text"]
    assert summary["best_blend"] == "score_gated"  # the only variant that is not a baseline
    assert (run_dir / "experiment" / "summary.md").read_text().count("\n| ") == len(VARIANTS) + 1


def test_a_finished_seed_is_reused_and_bad_seeds_are_refused(tmp_path):
    from curate_train.experiment import ExperimentSpec
    from curate_train.seeds import run_seeds

    spec = ExperimentSpec(name="t", variants=[{"name": n, "strategy": "replace_prob"} for n in VARIANTS])
    for seed in (3, 4):
        write_seed(tmp_path, seed, (10.0, 5.0, 20.0))
    said = []
    summary = run_seeds(spec, tmp_path, [3, 4], echo=said.append)  # nothing left to train
    assert all("reused" in line for line in said)
    gated = summary["results"][2]
    assert (gated["gap_vs_alt_text"], gated["gap_vs_alt_text_std"], gated["wins_vs_alt_text"]) == (10.0, 0.0, 2)


def test_eval_only_walks_every_seed_directory_and_refuses_unfinished_seeds(tmp_path):
    import pytest
    from curate_train.experiment import ExperimentSpec
    from curate_train.seeds import reevaluate_seeds

    from curate.errors import CurateError

    spec = ExperimentSpec(name="t", variants=[{"name": n, "strategy": "replace_prob"} for n in VARIANTS])
    for seed in (0, 1):
        write_seed(tmp_path, seed, (10.0, 5.0, 20.0))
    seen = []

    def reevaluate(seed_spec, seed_dir, echo):  # stands in for re-running eval_zeroshot
        seen.append((seed_spec.seed, seed_dir.name))
        path = seed_dir / "experiment" / "results.json"
        rows = json.loads(path.read_text())["results"]
        path.write_text(json.dumps({"results": [{**r, "accuracy": r["accuracy"] + 1} for r in rows]}))

    with pytest.raises(CurateError, match=r"seed\(s\) 2 have no finished run") as error:
        reevaluate_seeds(spec, tmp_path, [0, 1, 2], echo=lambda _: None, reevaluate=reevaluate)
    assert "seed-0, seed-1" in error.value.hint and not seen  # nothing re-evaluated before the check
    summary = reevaluate_seeds(spec, tmp_path, [0, 1], echo=lambda _: None, reevaluate=reevaluate)
    assert seen == [(0, "seed-0"), (1, "seed-1")]
    assert summary["results"][0]["accuracy_by_seed"] == [11.0, 11.0]


def test_the_cli_refuses_seeds_that_are_not_integers(tmp_path, capsys):
    from curate.cli import main

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("name: t\nvariants: [{name: alt_text, strategy: replace_prob}]\n")
    assert main(["experiment", "run", str(spec_file), "--seeds", "0,x"]) == 2
    assert "expected comma-separated integers" in capsys.readouterr().err


def test_the_report_shows_the_multi_seed_summary_before_a_single_run(tmp_path):
    from curate_report.rundata import RunData
    from curate_report.sections import experiments
    from curate_train.seeds import summarize

    for seed in (0, 1):
        write_seed(tmp_path, seed, (10.0 + seed, 5.0, 20.0))
    summarize("t", tmp_path, [0, 1])
    (tmp_path / "experiment" / "results.json").write_text(json.dumps({"results": [{"variant": "stale", "accuracy": 1}]}))
    with RunData(tmp_path, {"steps": []}) as data:
        html = experiments.build(data)["html"]
    assert "<td>score_gated</td>" in html and "stale" not in html
    assert "<th>accuracy_std</th>" in html or "accuracy_std" in html
