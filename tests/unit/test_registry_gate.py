"""The promotion gate's decisions from metrics alone, and the registry settings."""

from __future__ import annotations

import pytest

from dubops.config import ConfigError, load_config
from dubops.registry.gate import compare_to_baselines, compare_to_champion, decide
from dubops.registry.settings import GatedMetric

GATES = [
    GatedMetric(metric="emo_acc", direction="higher", tolerance=0.02),
    GatedMetric(metric="mcd_dtw", direction="lower", tolerance=1.0),
    GatedMetric(metric="wer", direction="lower", tolerance=0.02),
]
CHAMPION = {"emo_acc": 0.50, "mcd_dtw": 50.0, "wer": 0.40}


def test_challenger_worse_beyond_tolerance_on_one_metric_is_refused():
    challenger = {"emo_acc": 0.60, "mcd_dtw": 45.0, "wer": 0.43}  # wer worse by 0.03 > 0.02
    decision = decide(GATES, 2, challenger, 1, CHAMPION, {})
    assert not decision.passed
    failed = [r["metric"] for r in decision.rows if not r["passed"]]
    assert failed == ["wer"]
    assert "wer" in decision.reason and "v2" in decision.reason


def test_challenger_worse_within_tolerance_passes():
    # Each metric worse than the champion by exactly its tolerance, or less.
    challenger = {"emo_acc": 0.48, "mcd_dtw": 50.9, "wer": 0.42}
    decision = decide(GATES, 2, challenger, 1, CHAMPION, {})
    assert decision.passed, decision.markdown()
    notes = {r["metric"]: r["note"] for r in decision.rows}
    assert notes["emo_acc"] == "worse, within tolerance"


def test_zero_tolerance_refuses_any_regression():
    gates = [GatedMetric(metric="reasoner_format_validity", direction="higher", tolerance=0.0)]
    champ = {"reasoner_format_validity": 1.0}
    assert decide(gates, 2, {"reasoner_format_validity": 1.0}, 1, champ, {}).passed
    assert not decide(gates, 2, {"reasoner_format_validity": 0.99}, 1, champ, {}).passed


def test_a_metric_the_challenger_lacks_refuses_one_the_champion_lacks_is_skipped():
    rows = compare_to_champion(GATES, {"emo_acc": 0.6, "mcd_dtw": 40.0}, CHAMPION)
    by_metric = {r["metric"]: r for r in rows}
    assert not by_metric["wer"]["passed"]
    assert "not evaluated" in by_metric["wer"]["note"]
    rows = compare_to_champion(GATES, {"emo_acc": 0.6, "mcd_dtw": 40.0, "wer": 0.1}, {"wer": 0.2})
    assert all(r["passed"] for r in rows)
    assert {r["note"] for r in rows if r["metric"] != "wer"} == {"champion has no value"}


def test_first_model_must_beat_every_baseline_on_the_metrics_it_has():
    baselines = {
        "mean-mel": {"mcd_dtw": 84.0, "wer": 1.0, "emo_acc": 0.19},
        "shuffled": {"mcd_dtw": 87.0, "wer": 1.0, "emo_acc": 0.17},
        "majority": {"reasoner_scene_type_accuracy": 0.336},  # not a gated metric here
    }
    good = {"mcd_dtw": 50.0, "wer": 0.38, "emo_acc": 0.21}
    decision = decide(GATES, 1, good, None, None, baselines)
    assert decision.passed and decision.champion is None
    assert len(decision.rows) == 6  # two baselines x three gated metrics
    # Worse than one baseline on one metric: refused, even by a hair.
    bad = {**good, "emo_acc": 0.18}
    refused = decide(GATES, 1, bad, None, None, baselines)
    assert not refused.passed
    assert [(r["reference"], r["metric"]) for r in refused.rows if not r["passed"]] == [
        ("mean-mel", "emo_acc")
    ]
    # Equal is not better.
    tie = {**good, "wer": 1.0}
    assert not decide(GATES, 1, tie, None, None, baselines).passed


def test_first_model_without_baselines_is_refused_with_the_way_out():
    decision = decide(GATES, 1, {"wer": 0.1}, None, None, {})
    assert not decision.passed and not decision.rows
    assert "--force" in decision.reason


def test_baseline_rows_ignore_metrics_the_baseline_lacks():
    rows = compare_to_baselines(GATES, {"wer": 0.3}, {"mean-mel": {"wer": 1.0}})
    assert [(r["metric"], r["passed"]) for r in rows] == [("wer", True)]


def test_champion_equal_to_challenger_passes_trivially():
    decision = decide(GATES, 3, {}, 3, {}, {})
    assert decision.passed and "already" in decision.reason


def test_markdown_table_lists_every_row():
    challenger = {"emo_acc": 0.60, "mcd_dtw": 45.0, "wer": 0.43}
    text = decide(GATES, 2, challenger, 1, CHAMPION, {}).markdown()
    assert "REFUSED" in text and "champion v1" in text
    assert text.count("| champion |") == 3
    assert "| wer | lower | 0.02 | 0.4 | 0.43 | -0.03 | NO |" in text


def test_presets_carry_the_gated_metrics_and_reject_duplicates():
    tiny = load_config("tiny").registry
    names = [g.metric for g in tiny.gated_metrics]
    assert {"emo_acc", "spk_sim_target", "mcd_dtw", "wer", "lse_abs_offset_frames"} <= set(names)
    assert {"reasoner_scene_type_accuracy", "reasoner_format_validity"} <= set(names)
    directions = {g.metric: g.direction for g in tiny.gated_metrics}
    assert directions["mcd_dtw"] == "lower" and directions["emo_acc"] == "higher"
    base = load_config("base").registry
    assert all(
        b.tolerance <= t.tolerance
        for b in base.gated_metrics
        for t in tiny.gated_metrics
        if b.metric == t.metric
    )
    twice = (
        "registry.gated_metrics=[{metric: wer, direction: lower}, {metric: wer, direction: lower}]"
    )
    with pytest.raises(ConfigError, match="wer"):
        load_config("tiny", overrides=[twice])
    with pytest.raises(ConfigError, match="direction"):
        load_config("tiny", overrides=["registry.gated_metrics=[{metric: wer, direction: up}]"])


def _measured(data: str | None, splits: str = "", clips: str = ""):
    from dubops.registry.gate import Measurement

    tags = {"data_version": data} if data else {}
    if splits:
        tags["eval.splits"] = splits
    if clips:
        tags["eval.clips"] = clips
    return Measurement.from_tags(tags)


GOOD = {"emo_acc": 0.60, "mcd_dtw": 45.0, "wer": 0.30}  # better than CHAMPION on every metric


def test_another_data_version_or_test_set_refuses_however_good_the_metrics():
    champ = _measured("aaaa", "test_s1,test_s2", "119")
    for other in (
        _measured("bbbb", "test_s1,test_s2", "119"),
        _measured("aaaa", "test_s1", "60"),
        _measured("aaaa", "test_s2,test_s1", "100"),
    ):
        decision = decide(GATES, 2, GOOD, 1, CHAMPION, {}, other, champ)
        assert not decision.passed, other
        assert "v1 was measured on data version aaaa / test set test_s1+test_s2 (119 clips)" in (
            decision.reason
        )
        assert "--force" in decision.reason and "dubops registry promote v2" in decision.reason
        assert all(r["passed"] for r in decision.rows)  # the metrics alone would pass
    # The same corpus and test set, splits in another order: compared as usual.
    same = _measured("aaaa", "test_s2,test_s1", "119")
    decision = decide(GATES, 2, GOOD, 1, CHAMPION, {}, same, champ)
    assert decision.passed and decision.notes == [], decision.markdown()


def test_unrecorded_measurements_compare_anyway_with_a_note():
    decision = decide(GATES, 2, GOOD, 1, CHAMPION, {}, _measured("aaaa"), _measured(None))
    assert decision.passed
    assert decision.notes[0] == "data versions could not be checked: not recorded on v1"
    assert decision.notes[1] == "test sets could not be checked: not recorded on v1 and v2"
    assert "Note: data versions could not be checked" in decision.markdown()
    # Unknown test sets never hide a known difference in data version.
    refused = decide(GATES, 2, GOOD, 1, CHAMPION, {}, _measured("bbbb"), _measured("aaaa"))
    assert not refused.passed and "test set unknown" in refused.reason


def test_first_model_against_baselines_is_not_checked_for_measurements():
    baselines = {"mean-mel": {"mcd_dtw": 84.0, "wer": 1.0, "emo_acc": 0.19}}
    decision = decide(GATES, 1, GOOD, None, None, baselines, _measured("aaaa"), None)
    assert decision.passed and decision.notes == []


def test_evaluation_tags_round_trip():
    from dubops.registry.gate import Measurement, evaluation_tags

    tags = {"dubops.data_version": "run", "data_version": "bundle"}
    tags |= evaluation_tags(["test_s2", "test_s1"], 119)
    measured = Measurement.from_tags(tags)
    assert measured.data_version == "run"  # the evaluation's corpus over the bundle's
    assert (measured.splits, measured.clips) == (("test_s1", "test_s2"), 119)
