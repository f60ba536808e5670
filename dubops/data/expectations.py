"""The corpus manifest's expectations: one GE expectation per rule, each naming its field.

Kept apart from the runner (:mod:`dubops.data.validation`) so the rules read as
a list. Every expectation carries ``meta = {"field", "rule", "fix"}``: the
runner turns a failed one into a message that names the field and the fix.
Rules on files and list columns assert the helper columns of
:mod:`dubops.data.media_checks` (``_``-prefixed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dubops.data import schema
from dubops.data.media_checks import error_column

if TYPE_CHECKING:
    import pandas as pd

_INT_TYPES = ["int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8", "int"]
_TYPE_LISTS: dict[str, list[str]] = {
    "str": ["str"],
    "int": _INT_TYPES,
    "float": ["float64", "float32", "float", *_INT_TYPES],
    # Parquet gives numpy arrays; they are turned into lists before the run.
    "list_str": ["list"],
    "list_int": ["list"],
}
_FILE_COLUMNS = ("audio_path", "prompt_audio_path", "video_path")
# The four tags in order, each closed (DeepDubber's format reward).
_COT_REGEX = "(?s)" + ".*".join(f"<{t}>.*</{t}>" for t in schema.COT_TAGS)


def _check(expectation: Any, field: str | None, rule: str, fix: str) -> Any:
    """Attach the field, the rule and the fix to an expectation (read back from results)."""
    expectation.meta = {"field": field, "rule": rule, "fix": fix}
    return expectation


def build_expectations(df: pd.DataFrame) -> list[Any]:
    """The expectations for this manifest (only on columns that exist, so none errors)."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    cols = set(df.columns)
    has = cols.__contains__
    checks: list[Any] = [
        _check(
            gxe.ExpectTableColumnsToMatchSet(column_set=list(schema.COLUMNS), exact_match=False),
            None,
            "the manifest has every schema column",
            "add the missing columns (see dubops.data.schema.COLUMNS)",
        ),
        _check(
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            None,
            "the manifest has at least one clip",
            "rebuild the corpus",
        ),
    ]
    for col, kind in schema.COLUMNS.items():
        if not has(col):
            continue
        checks.append(
            _check(
                gxe.ExpectColumnValuesToNotBeNull(column=col),
                col,
                f"{col} has no null values",
                "fill it (empty string or empty list where nothing applies)",
            )
        )
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeInTypeList(column=col, type_list=_TYPE_LISTS[kind]),
                col,
                f"{col} holds values of kind {kind}",
                "write the column with the schema's type",
            )
        )
    for col, allowed in schema.LABEL_SETS.items():
        if has(col):
            checks.append(
                _check(
                    gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(allowed)),
                    col,
                    f"{col} is one of {', '.join(allowed)}",
                    "map the label onto the schema's set",
                )
            )
    if has("clip_id"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeUnique(column="clip_id"),
                "clip_id",
                "clip_id is unique",
                "drop or rename the duplicated clips",
            )
        )
    if has("num_people"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeBetween(
                    column="num_people", min_value=0, max_value=schema.MAX_PEOPLE
                ),
                "num_people",
                f"num_people is in 0..{schema.MAX_PEOPLE}",
                "fix the people count",
            )
        )
    checks += _talker_checks(has)
    if has("audio_seconds"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeBetween(
                    column="audio_seconds",
                    min_value=schema.MIN_AUDIO_SECONDS,
                    max_value=schema.MAX_AUDIO_SECONDS,
                ),
                "audio_seconds",
                f"audio_seconds is in [{schema.MIN_AUDIO_SECONDS}, {schema.MAX_AUDIO_SECONDS}]",
                "drop or split clips outside the range",
            )
        )
    if has("script"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToMatchRegex(column="script", regex=r"\S"),
                "script",
                "script is not empty",
                "fill in the transcript or drop the clip",
            )
        )
    checks += _derived_checks(df)
    if has("speaker") and has("split"):
        unseen = sorted(set(df.loc[df["split"] == "test_s2", "speaker"].dropna().astype(str)))
        if unseen:
            checks.append(
                _check(
                    gxe.ExpectColumnValuesToNotBeInSet(
                        column="speaker",
                        value_set=unseen,
                        row_condition=Column("split").is_in(["train", "val"]),
                    ),
                    "speaker",
                    "no speaker of split test_s2 appears in split train or val (speaker leak)",
                    "move those clips to test_s1 or the speaker's clips out of train/val",
                )
            )
    if has("cot") and has("source"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToMatchRegex(
                    column="cot", regex=_COT_REGEX, row_condition=Column("source") == "synthetic"
                ),
                "cot",
                "cot of synthetic clips holds "
                + ", ".join(f"<{t}>…</{t}>" for t in schema.COT_TAGS)
                + " in order",
                "regenerate the chain-of-thought annotation",
            )
        )
    return checks


def _talker_checks(has: Any) -> list[Any]:
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    checks: list[Any] = []
    if has("talker_index") and has("num_people"):
        checks.append(
            _check(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="num_people", column_B="talker_index"
                ),
                "talker_index",
                "talker_index is below num_people",
                "point talker_index at a character on screen",
            )
        )
    if has("talker_index") and has("scene_type"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeInSet(
                    column="talker_index",
                    value_set=[-1],
                    row_condition=Column("scene_type") == "narration",
                ),
                "talker_index",
                "talker_index is -1 for narration (nobody on screen talks)",
                "set talker_index to -1 or change scene_type",
            )
        )
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeBetween(
                    column="talker_index",
                    min_value=0,
                    max_value=schema.MAX_PEOPLE - 1,
                    row_condition=Column("scene_type") != "narration",
                ),
                "talker_index",
                "talker_index is a character (>= 0) for dialogue and monologue",
                "set the talking character or change scene_type to narration",
            )
        )
    return checks


def _derived_checks(df: pd.DataFrame) -> list[Any]:
    """Checks on the helper columns computed before the run (lists and media files)."""
    import great_expectations.expectations as gxe

    has = set(df.columns).__contains__
    checks: list[Any] = []
    if has("_phoneme_frames_sum") and has("mel_frames"):
        checks.append(
            _check(
                gxe.ExpectColumnPairValuesToBeEqual(
                    column_A="_phoneme_frames_sum",
                    column_B="mel_frames",
                    ignore_row_if="either_value_is_missing",
                ),
                "phoneme_frames",
                "phoneme_frames sums to mel_frames",
                "recompute the phoneme durations so they cover the whole clip",
            )
        )
    for prefix in ("", "prompt_"):
        a, b = f"_{prefix}phonemes_len", f"_{prefix}phoneme_frames_len"
        if has(a) and has(b):
            checks.append(
                _check(
                    gxe.ExpectColumnPairValuesToBeEqual(
                        column_A=a, column_B=b, ignore_row_if="either_value_is_missing"
                    ),
                    f"{prefix}phonemes",
                    f"{prefix}phonemes and {prefix}phoneme_frames have the same length",
                    "give every phoneme one duration",
                )
            )
    for col in _FILE_COLUMNS:
        if has(error_column(col)):
            checks.append(
                _check(
                    gxe.ExpectColumnValuesToBeInSet(column=error_column(col), value_set=[""]),
                    col,
                    f"the file at {col} exists and decodes",
                    "re-import or regenerate those clips' media",
                )
            )
    if has("_av_seconds_diff"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeBetween(
                    column="_av_seconds_diff", max_value=schema.AV_DURATION_TOLERANCE_S
                ),
                "video_seconds",
                "the audio (wav header) and the video (frames / fps) last the same "
                f"within {schema.AV_DURATION_TOLERANCE_S} s",
                "trim or pad the audio to the video, or re-cut the clip",
            )
        )
    if has("_audio_seconds_drift"):
        checks.append(
            _check(
                gxe.ExpectColumnValuesToBeBetween(column="_audio_seconds_drift", max_value=0.02),
                "audio_seconds",
                "audio_seconds matches the wav file",
                "rewrite the manifest from the files",
            )
        )
    if has("_video_frames_measured") and has("video_frames"):
        checks.append(
            _check(
                gxe.ExpectColumnPairValuesToBeEqual(
                    column_A="_video_frames_measured",
                    column_B="video_frames",
                    ignore_row_if="either_value_is_missing",
                ),
                "video_frames",
                "video_frames matches the mp4 file",
                "rewrite the manifest from the files",
            )
        )
    return checks
