"""V2C and GRID importers on tiny source folders in the published layouts, checked by validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from dubops.data.importers.grid import import_grid
from dubops.data.importers.v2c import import_v2c
from dubops.data.layout import CorpusLayout
from dubops.data.validation import format_report, validate_corpus
from dubops.video import probe_video
from tests.fixtures.sources import GRID_SENTENCES, V2C_CLIPS, build_grid_source, build_v2c_source


@pytest.fixture(scope="module")
def v2c_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_v2c_source(tmp_path_factory.mktemp("v2c"))


@pytest.fixture(scope="module")
def grid_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_grid_source(tmp_path_factory.mktemp("grid"))


def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "src"))


def test_v2c_import_passes_validation(v2c_source: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    manifest = import_v2c(
        v2c_source, tmp_path / "corpus", progress=lambda d, t: calls.append((d, t))
    )
    report = validate_corpus(tmp_path / "corpus")
    assert report.ok, format_report(report)
    assert calls[-1] == (len(V2C_CLIPS), len(V2C_CLIPS))

    df = pd.read_parquet(manifest).set_index("clip_id")
    assert df.loc["Frozen@Anna_00_0001_00", "split"] == "train"
    assert df.loc["Frozen@Olaf_00_0002_00", "split"] == "val"
    assert df.loc["Frozen@Anna_00_0003_00", "split"] == "test_s1"  # Anna is seen in train
    assert set(df.loc[df["speaker"] == "BossBaby_Tim", "split"]) == {"test_s2"}
    assert df.loc["Frozen@Anna_00_0001_00", "emotion"] == "joy"  # "happy" mapped
    assert df.loc["BossBaby@Tim_00_0001_00", "emotion"] == "anger"
    assert df.loc["Frozen@Anna_00_0002_00", "emotion"] == "neutral"
    assert (df.loc["BossBaby@Tim_00_0001_00", ["gender", "age"]] == ["male", "child"]).all()
    assert df.loc["Frozen@Anna_00_0001_00", "gender"] == "female"
    assert df.loc["Frozen@Olaf_00_0001_00", "gender"] == "male"  # defaulted
    assert (df["scene_type"] == "monologue").all() and (df["source"] == "v2c").all()
    # Braces, plain and empty (espeak fallback) phone fields all give phonemes.
    assert all(len(p) > 2 for p in df["phonemes"])
    assert "{" not in " ".join(df.loc["Frozen@Anna_00_0001_00", "phonemes"])
    assert df.loc["Frozen@Anna_00_0001_00", "prompt_text"] == "we can build it"

    layout = CorpusLayout(tmp_path / "corpus")
    assert not probe_video(layout.resolve(df.loc["Frozen@Anna_00_0002_00", "video_path"])).has_audio
    assert probe_video(layout.resolve(df.loc["Frozen@Olaf_00_0002_00", "video_path"])).fps == 25
    info = json.loads(layout.info.read_text())
    assert info["clips"] == len(V2C_CLIPS)
    assert info["defaults"]["speakers_defaulted"] == ["Frozen_Olaf"]


def test_grid_import_passes_validation(grid_source: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    manifest = import_grid(
        grid_source,
        tmp_path / "corpus",
        held_out=["s20"],
        progress=lambda d, t: calls.append((d, t)),
    )
    report = validate_corpus(tmp_path / "corpus")
    assert report.ok, format_report(report)
    n = 3 * len(GRID_SENTENCES)
    assert calls[-1] == (n, n)

    df = pd.read_parquet(manifest).set_index("clip_id")
    assert len(df) == n
    assert set(df.loc[df["speaker"] == "s20", "split"]) == {"test_s2"}
    assert set(df.loc[df["speaker"] != "s20", "split"]) <= {"train", "val", "test_s1"}
    row = df.loc["s1_bbaf2n"]
    assert row["script"] == "bin blue now"
    assert (row["gender"], row["age"], row["emotion"]) == ("male", "adult", "neutral")
    assert df.loc["s4_bbaf2n", "gender"] == "female"  # GRID's published talker table
    assert (row["scene_type"], row["num_people"], row["talker_index"]) == ("monologue", 1, 0)
    phonemes, frames = list(row["phonemes"]), list(row["phoneme_frames"])
    assert sum(frames) == row["mel_frames"]
    # The leading 0.15 s silence of the align file is the first phoneme: 0.15 * 24000/256 frames.
    assert phonemes[0] == "_" and abs(frames[0] - 14) <= 1
    assert phonemes.count("_") == 4  # sil, sp, sp, sil
    # s1's mpg was re-encoded to an mp4 at 25 fps.
    video = CorpusLayout(tmp_path / "corpus").resolve(row["video_path"])
    assert video.suffix == ".mp4" and probe_video(video).fps == 25


def test_grid_split_is_stable_and_by_utterance(grid_source: Path, tmp_path: Path) -> None:
    a = pd.read_parquet(import_grid(grid_source, tmp_path / "a", held_out=[], test_fraction=0.4))
    b = pd.read_parquet(import_grid(grid_source, tmp_path / "b", held_out=[], test_fraction=0.4))
    assert list(a["split"]) == list(b["split"])
    assert "test_s2" not in set(a["split"])


def test_v2c_without_filelists_names_them(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(ValueError, match=r"train\.txt"):
        import_v2c(tmp_path / "src", tmp_path / "out")


def test_v2c_missing_wav_names_the_clip(v2c_source: Path, tmp_path: Path) -> None:
    src = _copy(v2c_source, tmp_path)
    (src / "Frozen" / "Frozen@Olaf_00_0001_00.wav").unlink()
    with pytest.raises(ValueError, match=r"Frozen@Olaf_00_0001_00\.wav"):
        import_v2c(src, tmp_path / "out")
    manifest = import_v2c(src, tmp_path / "out", skip_missing=True)
    assert len(pd.read_parquet(manifest)) == len(V2C_CLIPS) - 1


def test_v2c_bad_lines_name_file_and_line(v2c_source: Path, tmp_path: Path) -> None:
    src = _copy(v2c_source, tmp_path)
    (src / "emotions.txt").write_text("Frozen@Anna_00_0001_00|grumpy\n")
    with pytest.raises(ValueError, match=r"emotions\.txt:1.*grumpy"):
        import_v2c(src, tmp_path / "out")
    (src / "emotions.txt").unlink()
    (src / "val.txt").write_text("only|three|fields\n")
    with pytest.raises(ValueError, match=r"val\.txt:1"):
        import_v2c(src, tmp_path / "out")


def test_grid_bad_layouts_name_what_is_missing(grid_source: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"s1/"):
        import_grid(tmp_path, tmp_path / "out")
    src = _copy(grid_source, tmp_path)
    shutil.rmtree(src / "s4" / "align")
    with pytest.raises(ValueError, match=r"s4 has no align/"):
        import_grid(src, tmp_path / "out")
    shutil.rmtree(src / "s4")
    (src / "s1" / "video" / "bbaf2n.mpg").unlink()
    with pytest.raises(ValueError, match=r"bbaf2n\.mpg"):
        import_grid(src, tmp_path / "out")
    (src / "s1" / "align" / "bbaf2n.align").write_text("0 100\n")
    (src / "s1" / "video" / "bbaf2n.mp4").write_bytes(
        (src / "s1" / "video" / "lgaz8p.mpg").read_bytes()
    )
    with pytest.raises(ValueError, match=r"bbaf2n\.align:1"):
        import_grid(src, tmp_path / "out")
