"""Great Expectations suite for a corpus folder: the gate before any training.

Why one GE run over a DataFrame with helper columns: the checks on the media
files (exists, decodes, durations agree) are measured first, in a thread pool,
into ``_``-prefixed columns; the suite then asserts them beside the schema,
label and leak checks, so every failure comes out of the same run, in the same
shape, with example clip ids. GE's ephemeral context keeps nothing on disk and
validates a few hundred rows in about a second.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.data import schema
from dubops.data.expectations import build_expectations
from dubops.data.layout import CorpusLayout
from dubops.data.media_checks import add_media_columns

if TYPE_CHECKING:
    import pandas as pd

    from dubops.config import AudioConfig

logger = logging.getLogger(__name__)

_EXAMPLES = 5


@dataclass
class Failure:
    """One failed expectation: what, on which field, how to fix it, which clips."""

    expectation: str
    column: str | None
    message: str
    examples: list[str] = field(default_factory=list)
    count: int = 0


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_corpus`."""

    root: str
    ok: bool
    failures: list[Failure]
    checked_rows: int
    seconds: float
    expectations: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_corpus(
    root: str | Path, audio: AudioConfig | None = None, workers: int = 8
) -> ValidationReport:
    """Validate the manifest and media files of the corpus folder ``root``.

    Args:
        root: corpus folder (see :mod:`dubops.data.layout`).
        audio: the audio config (expected sample rate); defaults to ``AudioConfig()``.
        workers: threads that probe the media files.

    Returns:
        A report; ``ok`` is False when any expectation failed. A missing or
        unreadable manifest is reported as a failure, not raised.
    """
    from dubops.config import AudioConfig

    start = time.perf_counter()
    layout = CorpusLayout(Path(root))
    audio = audio or AudioConfig()
    df, failure = _load_manifest(layout)
    if failure is not None:
        return ValidationReport(str(root), False, [failure], 0, time.perf_counter() - start)
    df = _normalise_lists(df)
    df = add_media_columns(df, layout, audio.sample_rate, workers=workers)
    failures, count = _run_suite(df)
    info_failures, info_checks = check_corpus_info(df, layout, audio.sample_rate)
    failures, count = failures + info_failures, count + info_checks
    seconds = time.perf_counter() - start
    logger.info(
        "validated %d clips of %s in %.2f s: %d failures", len(df), root, seconds, len(failures)
    )
    return ValidationReport(str(root), not failures, failures, len(df), seconds, count)


def check_corpus_info(
    df: pd.DataFrame, layout: CorpusLayout, sample_rate: int
) -> tuple[list[Failure], int]:
    """The manifest against ``corpus.json``: clip count, per-column counts, sample rate.

    A manifest edited, truncated or copied from another corpus passes every
    row-level expectation; what the corpus recorded when it was made does not.

    Returns:
        ``(failures, number of checks run)``; no ``corpus.json``: nothing to compare.
    """
    if not layout.info.is_file():
        return [], 0
    try:
        info = json.loads(layout.info.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        fix = f"{layout.info} is not readable JSON ({exc}); rebuild the corpus"
        return [Failure("corpus_info_readable", None, fix)], 1
    failures, checks = [], 0
    if isinstance(info.get("clips"), int):
        checks += 1
        if info["clips"] != len(df):
            failures.append(
                Failure(
                    "manifest_matches_corpus_info",
                    "clip_id",
                    f"the manifest has {len(df)} clips but {layout.info.name} records "
                    f"{info['clips']}; the manifest was edited or belongs to another corpus: "
                    "rebuild it (dubops data synth / data import)",
                )
            )
    for column, recorded in (info.get("counts") or {}).items():
        if column not in df or not isinstance(recorded, dict):
            continue
        checks += 1
        found = {str(k): int(v) for k, v in df[column].value_counts().items()}
        recorded = {str(k): int(v) for k, v in recorded.items()}
        if found != recorded:
            differ = sorted(
                k for k in set(found) | set(recorded) if found.get(k) != recorded.get(k)
            )
            failures.append(
                Failure(
                    "manifest_matches_corpus_info",
                    column,
                    f"{column} counts differ from {layout.info.name} for {differ[:5]} "
                    f"(manifest {[found.get(k, 0) for k in differ[:5]]}, recorded "
                    f"{[recorded.get(k, 0) for k in differ[:5]]}): rebuild the manifest",
                    examples=differ[:5],
                    count=len(differ),
                )
            )
    recorded_rate = ((info.get("config") or {}).get("audio") or {}).get("sample_rate")
    if isinstance(recorded_rate, int):
        checks += 1
        if recorded_rate != sample_rate:
            failures.append(
                Failure(
                    "corpus_sample_rate",
                    "audio_path",
                    f"{layout.info.name} records {recorded_rate} Hz audio but {sample_rate} Hz "
                    f"is expected; rebuild the corpus or set audio.sample_rate={recorded_rate}",
                )
            )
    return failures, checks


def format_report(report: ValidationReport) -> str:
    """The report as terminal text: one block per failed expectation."""
    head = "OK" if report.ok else f"FAILED ({len(report.failures)} of {report.expectations} checks)"
    lines = [
        f"corpus {report.root}: {head}, {report.checked_rows} clips, {report.seconds:.2f} s",
    ]
    for f in report.failures:
        lines.append(f"  x {f.message}")
        rows = f", {f.count} rows" if f.count else ""
        clips = f"; clips: {', '.join(f.examples)}" if f.examples else ""
        lines.append(f"      ({f.expectation}{rows}){clips}")
    return "\n".join(lines)


def _load_manifest(layout: CorpusLayout) -> tuple[pd.DataFrame | None, Failure | None]:
    import pandas as pd

    path = layout.manifest
    if not path.is_file():
        return None, Failure(
            "manifest_exists",
            None,
            f"no manifest at {path}; build the corpus first (dubops data synth / data import)",
        )
    try:
        return pd.read_parquet(path), None
    except Exception as exc:  # pyarrow raises several unrelated types
        return None, Failure(
            "manifest_readable",
            None,
            f"manifest {path} is not readable Parquet ({exc}); rebuild the corpus",
        )


def _normalise_lists(df: pd.DataFrame) -> pd.DataFrame:
    import numpy as np

    df = df.copy()
    for col, kind in schema.COLUMNS.items():
        if kind.startswith("list_") and col in df.columns:
            df[col] = df[col].map(lambda v: v.tolist() if isinstance(v, np.ndarray) else v)
    return df


def _run_suite(df: pd.DataFrame) -> tuple[list[Failure], int]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    batch = (
        context.data_sources.add_pandas("corpus")
        .add_dataframe_asset("manifest")
        .add_batch_definition_whole_dataframe("all_rows")
    )
    checks = build_expectations(df)
    for order, check in enumerate(checks):
        check.meta["order"] = order
    # Built whole, then stored once: add_expectation on a stored suite re-serialises it each time.
    suite = context.suites.add(gx.ExpectationSuite(name="corpus_manifest", expectations=checks))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="corpus_manifest", data=batch, suite=suite)
    )
    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": _EXAMPLES,
    }
    if "clip_id" in df.columns:
        result_format["unexpected_index_column_names"] = ["clip_id"]
    result = definition.run(
        batch_parameters={"dataframe": df.reset_index(drop=True)}, result_format=result_format
    )
    failed = sorted(
        (r for r in result.results if not r.success),
        key=lambda r: (r.expectation_config.meta or {}).get("order", 0),
    )
    failures = [_to_failure(r) for r in failed]
    return failures, len(checks)


def _to_failure(r: Any) -> Failure:
    config = r.expectation_config
    meta = config.meta or {}
    res = r.result or {}
    rule, fix, col = meta.get("rule", config.type), meta.get("fix", ""), meta.get("field")
    count = int(res.get("unexpected_count") or 0)
    examples = [
        str(i.get("clip_id")) if isinstance(i, dict) else str(i)
        for i in res.get("partial_unexpected_index_list") or []
    ]
    examples = list(dict.fromkeys(examples))[:_EXAMPLES]
    detail = _detail(r, res)
    message = f"{col}: expected {rule}" if col else f"expected {rule}"
    if detail:
        message += f"; {detail}"
    if fix:
        message += f". Fix: {fix}"
    return Failure(config.type, col, message, examples, count)


def _detail(r: Any, res: dict[str, Any]) -> str:
    """What was observed: an exception, missing columns, a dtype or example values."""
    info = r.exception_info or {}
    raised = [v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    if info.get("raised_exception"):
        raised.append(info)
    if raised:
        return f"the check raised: {raised[0].get('exception_message')}"
    missing = (res.get("details") or {}).get("mismatched", {}).get("missing")
    if missing:
        return f"missing columns: {', '.join(missing)}"
    if res.get("unexpected_count"):
        values = [_short(v) for v in res.get("partial_unexpected_list") or []]
        total = res.get("element_count")
        of = f" of {total}" if total else ""
        return f"{res['unexpected_count']}{of} rows fail, e.g. {'; '.join(values[:3])}"
    if "observed_value" in res:
        return f"observed {_short(res['observed_value'])}"
    return ""


def _short(value: Any, limit: int = 240) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
