"""The promotion gate: may the challenger replace the champion?

Against a champion, each gated metric may be worse by at most its tolerance (in
the metric's units): a challenger that regresses on one metric beyond it is
refused, whatever it gains elsewhere. With no champion (the first model), the
challenger must beat every stored baseline outright on every gated metric that
baseline has: a model no better than the mean mel or a majority-class guess
never reaches production.

A metric the reference has and the challenger lacks refuses (it was not
measured); one the reference lacks is reported and skipped.

Metrics compare only when measured alike: a challenger scored on another data
version (corpus manifest hash) or another test set (evaluation splits and clip
count) than the champion is refused with the way out (score both alike, or
promote by hand). A version registered without these tags is compared anyway,
with a note that the check could not be made. Baselines are scored with the
challenger, on its own test set, so the first model's comparison needs no check.

The comparison functions are pure; :func:`run_gate` reads the registry, and logs the decision
(metric ``gate_passed``, tags ``gate.*``) and the table (JSON and Markdown
artifacts) to the active MLflow run, and records the verdict on the version.
It never promotes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from dubops.registry.settings import GatedMetric
from dubops.registry.store import (
    CHALLENGER,
    CHAMPION,
    TAG_DATA_VERSION,
    RegistryError,
    alias_version,
    registry_client,
    resolve_version,
    version_baselines,
    version_metrics,
)
from dubops.registry.timestamps import local_iso
from dubops.tracking import TAG_DATA_VERSION as RUN_DATA_VERSION_TAG

if TYPE_CHECKING:
    from collections.abc import Mapping

    from dubops.config import DubOpsConfig

logger = logging.getLogger(__name__)
_EPS = 1e-9
# The corpus the evaluation ran on: the pipeline's tag (the evaluate step's corpus)
# first, else the bundle's (the corpus its footage library was built from).
_DATA_VERSION_TAGS = (RUN_DATA_VERSION_TAG, TAG_DATA_VERSION)
# The evaluation's test set, as the evaluate step records it in evaluation.json.
TAG_EVAL_SPLITS = "eval.splits"
TAG_EVAL_CLIPS = "eval.clips"


@dataclass(frozen=True)
class Measurement:
    """What a version's metrics were measured on; None where its tags do not say."""

    data_version: str | None = None
    splits: tuple[str, ...] | None = None
    clips: int | None = None

    @classmethod
    def from_tags(cls, tags: Mapping[str, str] | None) -> Measurement:
        tags = tags or {}
        data = next((tags[k] for k in _DATA_VERSION_TAGS if tags.get(k)), None)
        raw_splits = tags.get(TAG_EVAL_SPLITS, "")
        splits = tuple(sorted(s for s in raw_splits.split(",") if s)) or None
        raw_clips = tags.get(TAG_EVAL_CLIPS, "")
        clips = int(raw_clips) if raw_clips.strip().isdigit() else None
        return cls(data, splits, clips)

    def test_set(self) -> str:
        if self.splits is None and self.clips is None:
            return "unknown"
        names = "+".join(self.splits) if self.splits else "unknown splits"
        count = "unknown" if self.clips is None else str(self.clips)
        return f"{names} ({count} clips)"


def evaluation_tags(splits: Sequence[str], clips: int) -> dict[str, str]:
    """Version tags naming the test set (``register_bundle(..., tags=...)``).

    Args:
        splits: the evaluation's splits (``evaluation.json`` ``splits``).
        clips: how many clips were scored (``evaluation.json`` ``clips``).
    """
    return {TAG_EVAL_SPLITS: ",".join(sorted(splits)), TAG_EVAL_CLIPS: str(int(clips))}


def check_comparable(
    challenger: int, mine: Measurement, champion: int, theirs: Measurement
) -> tuple[str, list[str]]:
    """Whether the two versions' metrics were measured alike (pure).

    What a side does not record is unknown: not a difference, but a note.

    Returns:
        ``(mismatch, notes)``: ``mismatch`` is the refusal's reason ("" when
        nothing known differs); ``notes`` say what could not be checked.
    """
    sides = ((champion, theirs), (challenger, mine))
    notes, differ = [], False
    for what, known in (
        ("data versions", lambda m: m.data_version is not None),
        ("test sets", lambda m: m.splits is not None or m.clips is not None),
    ):
        lacking = [f"v{v}" for v, m in sides if not known(m)]
        if lacking:
            notes.append(f"{what} could not be checked: not recorded on {' and '.join(lacking)}")
    for attr in ("data_version", "splits", "clips"):
        a, b = getattr(mine, attr), getattr(theirs, attr)
        differ = differ or (a is not None and b is not None and a != b)
    if not differ:
        return "", notes
    mismatch = (
        f"v{challenger} refused: its metrics do not compare with champion v{champion}'s: "
        f"v{champion} was measured on data version {theirs.data_version or 'unknown'} / test set "
        f"{theirs.test_set()}, v{challenger} on data version {mine.data_version or 'unknown'} / "
        f"test set {mine.test_set()}; score both on the same corpus and test set and compare "
        f"(`dubops eval --ref CORPUS --split ...`, `dubops registry compare`), or promote by "
        f"hand: `dubops registry promote v{challenger} --force`"
    )
    return mismatch, notes


@dataclass
class GateDecision:
    """The verdict, the versions compared and one row per (reference, metric)."""

    passed: bool
    challenger: int
    champion: int | None
    rows: list[dict] = field(default_factory=list)
    reason: str = ""
    notes: list[str] = field(default_factory=list)  # what could not be checked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The table as Markdown (an MLflow artifact; also what the CLI prints)."""
        verdict = "PASSED" if self.passed else "REFUSED"
        against = f"champion v{self.champion}" if self.champion is not None else "the baselines"
        lines = [
            f"# Promotion gate: v{self.challenger} vs {against}: {verdict}",
            "",
            self.reason,
            "",
            *[f"Note: {note}" for note in self.notes],
            *([""] if self.notes else []),
            "| reference | metric | better | tolerance | reference value | challenger | "
            "change | ok | note |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in self.rows:
            lines.append(
                f"| {r['reference']} | {r['metric']} | {r['direction']} | {r['tolerance']:g} | "
                f"{_fmt(r['reference_value'])} | {_fmt(r['challenger_value'])} | "
                f"{_fmt(r['change'])} | {'yes' if r['passed'] else 'NO'} | {r['note']} |"
            )
        return "\n".join(lines) + "\n"


def compare_to_champion(
    gates: Sequence[GatedMetric], challenger: dict[str, float], champion: dict[str, float]
) -> list[dict]:
    """Rows for a challenger against the champion: worse by more than the tolerance fails."""
    rows = []
    for gate in gates:
        mine, theirs = challenger.get(gate.metric), champion.get(gate.metric)
        row = _row("champion", gate, theirs, mine)
        if theirs is None and mine is None:
            row.update(passed=True, note="neither version has it")
        elif theirs is None:
            row.update(passed=True, note="champion has no value")
        elif mine is None:
            row.update(passed=False, note="challenger was not evaluated on it")
        else:
            # A float hair (0.48 - 0.5 is -0.0200000000000000018) is not a regression.
            row["passed"] = row["change"] >= -gate.tolerance - _EPS * max(1.0, abs(theirs))
            if not row["passed"]:
                row["note"] = f"worse by {-row['change']:.4g} > tolerance {gate.tolerance:g}"
            elif row["change"] < 0:
                row["note"] = "worse, within tolerance"
        rows.append(row)
    return rows


def compare_to_baselines(
    gates: Sequence[GatedMetric],
    challenger: dict[str, float],
    baselines: dict[str, dict[str, float]],
) -> list[dict]:
    """Rows for a first model: it must be strictly better than each baseline that has the metric."""
    rows = []
    for system in sorted(baselines):
        for gate in gates:
            theirs = baselines[system].get(gate.metric)
            if theirs is None:
                continue
            mine = challenger.get(gate.metric)
            row = _row(system, gate, theirs, mine)
            if mine is None:
                row.update(passed=False, note="challenger was not evaluated on it")
            else:
                row["passed"] = row["change"] > 0
                if not row["passed"]:
                    row["note"] = "does not beat the baseline"
            rows.append(row)
    return rows


def decide(
    gates: Sequence[GatedMetric],
    challenger: int,
    metrics: dict[str, float],
    champion: int | None,
    champion_metrics: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    measured: Measurement | None = None,
    champion_measured: Measurement | None = None,
) -> GateDecision:
    """The verdict from metrics alone (no registry access).

    ``measured`` / ``champion_measured`` say what each version was scored on
    (default: unknown); against a champion, a difference refuses.
    """
    if champion is not None and champion == challenger:
        reason = f"v{challenger} is the champion already"
        return GateDecision(True, challenger, champion, [], reason)
    notes: list[str] = []
    if champion is not None:
        rows = compare_to_champion(gates, metrics, champion_metrics or {})
        against = f"champion v{champion}"
        mismatch, notes = check_comparable(
            challenger, measured or Measurement(), champion, champion_measured or Measurement()
        )
        if mismatch:
            # The rows stay for reference; their verdict would compare unlike with unlike.
            return GateDecision(False, challenger, champion, rows, mismatch, notes)
    else:
        rows = compare_to_baselines(gates, metrics, baselines)
        against = "every baseline"
        if not rows:
            return GateDecision(
                False,
                challenger,
                None,
                [],
                "no champion, and no stored baseline has a gated metric: nothing shows this "
                "first model is better than a trivial system; register it with baselines, or "
                "promote it by hand (`dubops registry promote VERSION --force`)",
            )
    failed = [r for r in rows if not r["passed"]]
    if failed:
        names = ", ".join(f"{r['metric']} ({r['reference']})" for r in failed)
        reason = f"v{challenger} refused against {against}: {names}"
    else:
        reason = f"v{challenger} passes against {against} on {len(rows)} comparison(s)"
    return GateDecision(not failed, challenger, champion, rows, reason, notes)


def run_gate(config: DubOpsConfig, challenger: int | None = None) -> GateDecision:
    """Compare the challenger (default: alias ``challenger``) with the champion; see module doc.

    Raises:
        RegistryError: no such version, or no challenger alias when none is given.
    """
    import mlflow

    client = registry_client(config)
    name = config.registry.model_name
    ref = CHALLENGER if challenger is None else challenger
    try:
        version = resolve_version(client, name, ref)
    except RegistryError as exc:
        if challenger is None:
            raise RegistryError(
                f"{exc}; register a bundle first (it becomes the challenger) or name a version"
            ) from None
        raise
    champion = alias_version(client, name, CHAMPION)
    held = client.get_model_version(name, str(champion)) if champion is not None else None
    decision = decide(
        config.registry.gated_metrics,
        int(version.version),
        version_metrics(version),
        champion,
        version_metrics(held) if held is not None else None,
        version_baselines(version),
        measured=Measurement.from_tags(version.tags),
        champion_measured=Measurement.from_tags(held.tags if held is not None else None),
    )
    logger.info("promotion gate: %s", decision.reason)
    _record_on_version(client, name, decision)
    active = mlflow.active_run()
    if active is not None:
        _log_to_run(client, active.info.run_id, decision)
    return decision


def _record_on_version(client: Any, name: str, decision: GateDecision) -> None:
    tags = {
        "gate.passed": str(decision.passed).lower(),
        "gate.against": "baselines" if decision.champion is None else f"v{decision.champion}",
        "gate.at": local_iso(),
        "gate.reason": decision.reason[:5000],
    }
    if decision.notes:
        tags["gate.notes"] = "; ".join(decision.notes)[:5000]
    for key, value in tags.items():
        client.set_model_version_tag(name, str(decision.challenger), key, value)


def _log_to_run(client: Any, run_id: str, decision: GateDecision) -> None:
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric("gate_passed", float(decision.passed), now, 0)],
        tags=[
            RunTag("gate.decision", "passed" if decision.passed else "refused"),
            RunTag("gate.challenger", str(decision.challenger)),
            RunTag("gate.champion", str(decision.champion) if decision.champion else "none"),
        ],
    )
    client.log_dict(run_id, decision.to_json(), "gate/decision.json")
    client.log_text(run_id, decision.markdown(), "gate/decision.md")


def _row(
    reference: str, gate: GatedMetric, theirs: float | None, mine: float | None
) -> dict[str, Any]:
    """One table row; ``change`` is signed so that positive means the challenger is better."""
    change = None
    if theirs is not None and mine is not None:
        change = (mine - theirs) if gate.direction == "higher" else (theirs - mine)
    return {
        "reference": reference,
        "metric": gate.metric,
        "direction": gate.direction,
        "tolerance": gate.tolerance,
        "reference_value": theirs,
        "challenger_value": mine,
        "change": change,
        "passed": False,
        "note": "",
    }


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"
