"""Generate a small synthetic corpus for real: media, manifest, determinism, resume."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from dubops.audio import read_wav
from dubops.config import load_config
from dubops.data.layout import CorpusLayout
from dubops.data.schema import COLUMNS
from dubops.data.synthetic import ROWS_DIR, generate_corpus
from dubops.video import probe_video

pytestmark = pytest.mark.slow


def _config(clips: int = 14, workers: int = 2):
    return load_config("tiny", overrides=[f"synth.clips={clips}", f"synth.workers={workers}"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    info = generate_corpus(_config(), root)
    return root, info


def test_manifest_has_schema_columns_and_media(corpus):
    root, info = corpus
    layout = CorpusLayout(root)
    frame = pd.read_parquet(layout.manifest)
    assert len(frame) == info["clips"] == 14
    assert set(COLUMNS) <= set(frame.columns)
    for row in frame.itertuples():
        wave, sr = read_wav(layout.resolve(row.audio_path))
        assert sr == 24_000
        assert abs(len(wave) / sr - row.audio_seconds) < 1e-3
        video = probe_video(layout.resolve(row.video_path))
        assert video.frames == row.video_frames and video.fps == 25
        assert abs(video.seconds - row.audio_seconds) < 0.08
        assert sum(row.phoneme_frames) == row.mel_frames
        assert len(row.phonemes) == len(row.phoneme_frames)
        assert layout.resolve(row.prompt_audio_path).is_file()
        assert row.cot.startswith("<SUMMARY>") and row.cot.endswith("</CONCLUSION>")
        assert len(json.loads(row.rejected)) == 4


def test_emotion_changes_prosody(corpus):
    """Sad speech is slower than angry speech for the same corpus (seconds per phoneme)."""
    root, _ = corpus
    frame = pd.read_parquet(CorpusLayout(root).manifest)
    rate = frame.audio_seconds / frame.phonemes.apply(len)
    by_emotion = rate.groupby(frame.emotion).mean()
    if {"sadness", "anger"} <= set(by_emotion.index):
        assert by_emotion["sadness"] > by_emotion["anger"]


def test_same_seed_same_corpus_whatever_the_worker_count(corpus, tmp_path):
    root, _ = corpus
    other = tmp_path / "again"
    generate_corpus(_config(workers=1), other)
    a = pd.read_parquet(CorpusLayout(root).manifest)
    b = pd.read_parquet(CorpusLayout(other).manifest)
    pd.testing.assert_frame_equal(a, b)
    for rel in a.audio_path:
        digest = [hashlib.sha256((r / rel).read_bytes()).hexdigest() for r in (root, other)]
        assert digest[0] == digest[1]


def test_unchanged_corpus_is_reused_and_interrupted_run_resumes(tmp_path):
    root = tmp_path / "c"
    first = generate_corpus(_config(clips=8), root)
    assert not first["reused"] and first["generated_now"] == 8
    assert generate_corpus(_config(clips=8), root)["reused"]
    # Simulate an interruption: two clips never finished, the manifest never written.
    CorpusLayout(root).manifest.unlink()
    rows = sorted((root / ROWS_DIR).glob("*.json"))
    for path in rows[:2]:
        path.unlink()
    resumed = generate_corpus(_config(clips=8), root)
    assert resumed["generated_now"] == 2 and resumed["clips"] == 8
    # The same settings again are reused; a changed seed rebuilds every clip.
    assert generate_corpus(_config(clips=8), root)["reused"]
    seed_changed = load_config("tiny", overrides=["synth.clips=8", "synth.seed=5"])
    assert generate_corpus(seed_changed, root)["generated_now"] == 8


def test_talker_mouth_follows_speech(corpus):
    """The drawn talker's mouth tracks the speech envelope (lip-sync is learnable)."""
    from dubops.audio import speech_envelope
    from dubops.speech.mouth import measure_mouth_openings
    from dubops.video import read_video

    root, _ = corpus
    layout = CorpusLayout(root)
    frame = pd.read_parquet(layout.manifest)
    talkers = frame[frame.talker_index >= 0]
    assert len(talkers) > 0
    corrs = []
    for row in talkers.itertuples():
        frames, fps = read_video(layout.resolve(row.video_path))
        mouths = measure_mouth_openings(frames, row.num_people)
        wave, sr = read_wav(layout.resolve(row.audio_path))
        env = speech_envelope(wave, sr, int(fps))[: len(frames)]
        corrs.append(np.corrcoef(mouths[row.talker_index][: len(env)], env)[0, 1])
    assert np.mean(corrs) > 0.8
