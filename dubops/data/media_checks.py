"""Measure a corpus's media files into helper columns for the validation suite.

Why helper columns: Great Expectations checks DataFrame columns, not files, so
each clip's files are probed once (wav header with soundfile, mp4 decoded with
:func:`dubops.video.probe_video`) in a thread pool and the results land beside
the manifest. An error string column is ``""`` when the file is fine; any other
value is the reason, which the suite shows as the failing example.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dubops.data.layout import CorpusLayout

if TYPE_CHECKING:
    import pandas as pd


def error_column(path_column: str) -> str:
    """Name of the helper column holding the error of ``path_column``'s file."""
    return f"_{path_column}_error"


def add_media_columns(
    df: pd.DataFrame, layout: CorpusLayout, sample_rate: int, workers: int = 8
) -> pd.DataFrame:
    """Copy of ``df`` with list-length, file-error and measured-duration helper columns.

    Added (when their source columns exist): ``_phoneme_frames_sum``,
    ``_phonemes_len``, ``_phoneme_frames_len``, ``_prompt_phonemes_len``,
    ``_prompt_phoneme_frames_len``, ``_<path>_error`` for ``audio_path``,
    ``prompt_audio_path`` and ``video_path``, ``_av_seconds_diff``,
    ``_audio_seconds_drift`` and ``_video_frames_measured``.
    """
    import pandas as pd

    df = df.copy()
    for prefix in ("", "prompt_"):
        if f"{prefix}phonemes" in df.columns:
            df[f"_{prefix}phonemes_len"] = df[f"{prefix}phonemes"].map(_length)
        if f"{prefix}phoneme_frames" in df.columns:
            df[f"_{prefix}phoneme_frames_len"] = df[f"{prefix}phoneme_frames"].map(_length)
    if "phoneme_frames" in df.columns:
        df["_phoneme_frames_sum"] = df["phoneme_frames"].map(_int_sum)
    columns = [c for c in ("audio_path", "prompt_audio_path", "video_path") if c in df.columns]
    if not columns or df.empty:
        return df
    rows = df[columns].to_dict("records")
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        measured = list(pool.map(lambda row: _measure(row, layout, sample_rate), rows))
    extra = pd.DataFrame(measured, index=df.index)
    for col in columns:
        df[error_column(col)] = extra[error_column(col)]
    audio_s = extra.get("_audio_seconds_measured")
    video_s = extra.get("_video_seconds_measured")
    if audio_s is not None and video_s is not None:
        df["_av_seconds_diff"] = (audio_s - video_s).abs()
    if audio_s is not None and "audio_seconds" in df.columns:
        declared = pd.to_numeric(df["audio_seconds"], errors="coerce")
        df["_audio_seconds_drift"] = (declared - audio_s).abs()
    if "_video_frames_measured" in extra:
        df["_video_frames_measured"] = extra["_video_frames_measured"]
    return df


def _measure(row: dict[str, Any], layout: CorpusLayout, sample_rate: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    nan = math.nan
    if "audio_path" in row:
        err, seconds = _probe_wav(row["audio_path"], layout, sample_rate)
        out[error_column("audio_path")] = err
        out["_audio_seconds_measured"] = nan if seconds is None else seconds
    if "prompt_audio_path" in row:
        out[error_column("prompt_audio_path")] = _probe_wav(
            row["prompt_audio_path"], layout, sample_rate
        )[0]
    if "video_path" in row:
        err, info = _probe_mp4(row["video_path"], layout)
        out[error_column("video_path")] = err
        out["_video_seconds_measured"] = nan if info is None else info.frames / info.fps
        out["_video_frames_measured"] = nan if info is None else float(info.frames)
    return out


def _probe_wav(rel: Any, layout: CorpusLayout, sample_rate: int) -> tuple[str, float | None]:
    """``(error or "", seconds)`` from the wav header alone."""
    import soundfile as sf

    if not isinstance(rel, str) or not rel.strip():
        return "no path given", None
    path = layout.resolve(rel)
    if not path.is_file():
        return f"{rel} is missing", None
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError
        return f"{rel} is not a readable wav ({exc})", None
    if info.samplerate != sample_rate or info.channels != 1:
        return (
            f"{rel} is {info.samplerate} Hz with {info.channels} channels, "
            f"expected {sample_rate} Hz mono",
            None,
        )
    return "", info.frames / info.samplerate


def _probe_mp4(rel: Any, layout: CorpusLayout) -> tuple[str, Any]:
    from dubops.video import probe_video

    if not isinstance(rel, str) or not rel.strip():
        return "no path given", None
    path = layout.resolve(rel)
    if not path.is_file():
        return f"{rel} is missing", None
    try:
        return "", probe_video(path)
    except ValueError as exc:
        return str(exc), None  # "cannot read video <path>: <reason>"


def _length(value: Any) -> float:
    try:
        return float(len(value)) if not isinstance(value, str) else math.nan
    except TypeError:
        return math.nan


def _int_sum(value: Any) -> float:
    try:
        if isinstance(value, str):
            return math.nan
        return float(sum(int(v) for v in value))
    except (TypeError, ValueError):
        return math.nan
