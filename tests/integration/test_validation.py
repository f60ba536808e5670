"""validate_corpus on a real (small) corpus folder: passes when valid, names the field when not."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from dubops.data.layout import CorpusLayout
from dubops.data.validation import ValidationReport, format_report, validate_corpus
from tests.fixtures.corpus import build_fixture_corpus, grey_video


@pytest.fixture(scope="module")
def valid_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixture_corpus(tmp_path_factory.mktemp("corpus") / "c", n=6)


@pytest.fixture
def corpus(valid_corpus: Path, tmp_path: Path) -> Path:
    """A fresh copy of the valid corpus for one test to break."""
    return Path(shutil.copytree(valid_corpus, tmp_path / "c"))


def _edit_manifest(root: Path, edit: Callable[[pd.DataFrame], None]) -> None:
    path = CorpusLayout(root).manifest
    df = pd.read_parquet(path)
    edit(df)
    df.to_parquet(path, index=False)


def _failure_on(report: ValidationReport, column: str):
    assert not report.ok, format_report(report)
    hits = [f for f in report.failures if f.column == column]
    assert hits, f"no failure on {column}: {format_report(report)}"
    assert column in hits[0].message
    return hits[0]


def test_valid_corpus_passes(valid_corpus: Path) -> None:
    report = validate_corpus(valid_corpus)
    assert report.ok, format_report(report)
    assert report.checked_rows == 6
    assert report.expectations > 40
    assert report.seconds < 30
    json.dumps(report.to_dict())
    assert "OK" in format_report(report)


def test_corrupt_mp4_names_video_path_and_clip(corpus: Path) -> None:
    video = corpus / "video" / "clip_001.mp4"
    video.write_bytes(b"\x00not an mp4 at all" * 64)
    failure = _failure_on(validate_corpus(corpus), "video_path")
    assert failure.examples == ["clip_001"]
    assert "clip_001.mp4" in failure.message


def test_missing_file_names_audio_path(corpus: Path) -> None:
    (corpus / "audio" / "clip_002.wav").unlink()
    failure = _failure_on(validate_corpus(corpus), "audio_path")
    assert failure.examples == ["clip_002"]
    assert "missing" in failure.message


def test_missing_prompt_names_prompt_audio_path(corpus: Path) -> None:
    (corpus / "prompt" / "clip_000.wav").unlink()
    assert _failure_on(validate_corpus(corpus), "prompt_audio_path").examples == ["clip_000"]


def test_label_outside_its_set(corpus: Path) -> None:
    _edit_manifest(corpus, lambda df: df.__setitem__("emotion", ["happy", *df["emotion"][1:]]))
    failure = _failure_on(validate_corpus(corpus), "emotion")
    assert failure.examples == ["clip_000"]
    assert "happy" in failure.message


def test_speaker_leak_names_speaker_and_split(corpus: Path) -> None:
    def leak(df: pd.DataFrame) -> None:
        df.loc[df["clip_id"] == "clip_004", "split"] = "train"  # spk_c is test_s2 in clip_005

    _edit_manifest(corpus, leak)
    failure = _failure_on(validate_corpus(corpus), "speaker")
    assert failure.examples == ["clip_004"]
    assert "split" in failure.message and "test_s2" in failure.message


@pytest.mark.parametrize("script", ["", "   "])
def test_empty_script(corpus: Path, script: str) -> None:
    _edit_manifest(corpus, lambda df: df.__setitem__("script", [script, *df["script"][1:]]))
    assert _failure_on(validate_corpus(corpus), "script").examples == ["clip_000"]


def test_phoneme_durations_not_summing(corpus: Path) -> None:
    def stretch(df: pd.DataFrame) -> None:
        frames = list(df.at[3, "phoneme_frames"])
        frames[0] += 3
        df.at[3, "phoneme_frames"] = frames

    _edit_manifest(corpus, stretch)
    assert _failure_on(validate_corpus(corpus), "phoneme_frames").examples == ["clip_003"]


def test_phoneme_lengths_disagree(corpus: Path) -> None:
    def drop(df: pd.DataFrame) -> None:
        df.at[2, "phonemes"] = list(df.at[2, "phonemes"])[:-1]

    _edit_manifest(corpus, drop)
    assert _failure_on(validate_corpus(corpus), "phonemes").examples == ["clip_002"]


def test_duplicate_id(corpus: Path) -> None:
    _edit_manifest(corpus, lambda df: df.__setitem__("clip_id", ["clip_000", *df["clip_id"][:-1]]))
    failure = _failure_on(validate_corpus(corpus), "clip_id")
    assert failure.examples == ["clip_000"]


def test_audio_video_durations_disagree(corpus: Path) -> None:
    layout = CorpusLayout(corpus)
    df = pd.read_parquet(layout.manifest)
    seconds = float(df.at[3, "audio_seconds"]) + 0.5
    frames = grey_video(corpus / "video" / "clip_003.mp4", seconds)
    df.at[3, "video_frames"], df.at[3, "video_seconds"] = frames, frames / 25
    df.to_parquet(layout.manifest, index=False)
    report = validate_corpus(corpus)
    failure = _failure_on(report, "video_seconds")
    assert failure.examples == ["clip_003"]
    assert "audio" in failure.message and "video" in failure.message
    assert [f.column for f in report.failures] == ["video_seconds"]


def test_talker_must_be_minus_one_for_narration(corpus: Path) -> None:
    # clip_002 is narration (talker -1); give it a talker.
    _edit_manifest(corpus, lambda df: df.__setitem__("talker_index", [1, 0, 0, 1, 0, -1]))
    failure = _failure_on(validate_corpus(corpus), "talker_index")
    assert failure.examples == ["clip_002"]


def test_synthetic_cot_needs_the_four_tags(corpus: Path) -> None:
    _edit_manifest(
        corpus, lambda df: df.__setitem__("cot", ["<SUMMARY>x</SUMMARY>", *df["cot"][1:]])
    )
    assert _failure_on(validate_corpus(corpus), "cot").examples == ["clip_000"]


def test_missing_column_and_wrong_type(corpus: Path) -> None:
    def edit(df: pd.DataFrame) -> None:
        df.drop(columns=["react"], inplace=True)
        df["num_people"] = df["num_people"].astype(float) + 0.5

    _edit_manifest(corpus, edit)
    report = validate_corpus(corpus)
    table = [f for f in report.failures if f.expectation == "expect_table_columns_to_match_set"]
    assert table and "react" in table[0].message
    assert _failure_on(report, "num_people")


def test_missing_manifest_is_one_failure(tmp_path: Path) -> None:
    report = validate_corpus(tmp_path / "nowhere")
    assert not report.ok and len(report.failures) == 1
    assert "manifest" in report.failures[0].message


def test_unreadable_manifest_is_one_failure(corpus: Path) -> None:
    CorpusLayout(corpus).manifest.write_bytes(b"PAR1 garbage")
    report = validate_corpus(corpus)
    assert not report.ok and len(report.failures) == 1
    assert report.failures[0].expectation == "manifest_readable"
    assert "Parquet" in format_report(report)
