"""Datasets and collates over a tiny fake corpus (3 clips, short wavs, 32 px videos)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dubops.audio import num_mel_frames, write_wav
from dubops.config import AudioConfig
from dubops.data.datasets import (
    LABEL_NAMES,
    NOTEXT_ID,
    PAD_ID,
    UNK_ID,
    FootageDataset,
    PhonemeVocab,
    ReasonerDataset,
    SpeechDataset,
    load_manifest,
    reasoner_prompt,
)
from dubops.data.layout import CorpusLayout
from dubops.data.schema import EMOTIONS, SCENE_TYPES
from dubops.video import write_video

AUDIO = AudioConfig()
SIZE = 32
# (clip_id, split, hops of target audio, hops of prompt audio, video frames, phonemes)
CLIPS = [
    ("c0", "train", 30, 20, 10, ["_", "h", "e", "l", "o", "_"]),
    ("c1", "train", 45, 28, 12, ["_", "w", "er", "l", "d"]),
    ("c2", "val", 25, 16, 8, ["_", "x", "_"]),
]


def _durations(total: int, count: int) -> list[int]:
    base = [total // count] * count
    base[-1] += total - sum(base)
    return base


def _write_clip(layout: CorpusLayout, clip_id: str, hops: int, prompt_hops: int, frames: int):
    t = np.arange(hops * AUDIO.hop_length) / AUDIO.sample_rate
    write_wav(layout.resolve(layout.audio_rel(clip_id)), 0.3 * np.sin(2 * np.pi * 220 * t), 24_000)
    tp = np.arange(prompt_hops * AUDIO.hop_length) / AUDIO.sample_rate
    write_wav(
        layout.resolve(layout.prompt_rel(clip_id)), 0.3 * np.sin(2 * np.pi * 330 * tp), 24_000
    )
    # Frame i is a flat grey of 20 * i, so the sampled indices can be read back.
    video = np.stack([np.full((SIZE, SIZE, 3), 20 * i, np.uint8) for i in range(frames)])
    write_video(layout.resolve(layout.video_rel(clip_id)), video, fps=25)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = CorpusLayout(tmp_path_factory.mktemp("corpus"))
    layout.make_dirs()
    rows = []
    for n, (clip_id, split, hops, prompt_hops, frames, phonemes) in enumerate(CLIPS):
        _write_clip(layout, clip_id, hops, prompt_hops, frames)
        mel_frames = num_mel_frames(hops * AUDIO.hop_length, AUDIO.hop_length)
        prompt_frames = num_mel_frames(prompt_hops * AUDIO.hop_length, AUDIO.hop_length)
        rows.append(
            {
                "clip_id": clip_id,
                "split": split,
                "speaker": f"spk{n % 2}",
                "gender": "female" if n % 2 else "male",
                "age": "adult",
                "emotion": EMOTIONS[n],
                "scene_type": SCENE_TYPES[n],
                "num_people": n,
                "talker_index": n - 1,
                "script": f"script {n}",
                "react": f"react {n}",
                "phonemes": phonemes,
                "phoneme_frames": _durations(mel_frames, len(phonemes)),
                "mel_frames": mel_frames,
                "audio_path": layout.audio_rel(clip_id),
                "audio_seconds": hops * AUDIO.hop_length / AUDIO.sample_rate,
                "video_path": layout.video_rel(clip_id),
                "video_seconds": frames / 25,
                "video_frames": frames,
                "prompt_audio_path": layout.prompt_rel(clip_id),
                "prompt_text": "prompt",
                "prompt_phonemes": ["p", "r", "z"],
                "prompt_phoneme_frames": _durations(prompt_frames, 3),
                "cot": f"<SUMMARY>s{n}</SUMMARY>",
                "rejected": json.dumps([{"kind": "wrong_scene", "text": "x"}]),
                "source": "synthetic",
            }
        )
    pd.DataFrame(rows).to_parquet(layout.manifest)
    return layout.root


def test_load_manifest_filters_splits(corpus: Path, tmp_path: Path):
    assert list(load_manifest(corpus)["clip_id"]) == ["c0", "c1", "c2"]
    assert list(load_manifest(corpus, "val")["clip_id"]) == ["c2"]
    assert len(load_manifest(corpus, ["train", "val"])) == 3
    with pytest.raises(ValueError, match="dubops data synth --out"):
        load_manifest(tmp_path / "nothing")


def test_reasoner_batch(corpus: Path):
    ds = ReasonerDataset(corpus, split="train", num_frames=4)
    assert len(ds) == 2
    batch = ReasonerDataset.collate([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 4, 3, SIZE, SIZE)
    assert batch["frames"].dtype == torch.float32
    assert batch["frames"].min() >= 0.0 and batch["frames"].max() <= 1.0
    # 10 frames, k=4: middles of four segments are frames 1, 3, 6, 8.
    grey = batch["frames"][0].mean(dim=(1, 2, 3)) * 255
    assert torch.allclose(grey, torch.tensor([20.0, 60.0, 120.0, 160.0]), atol=4)
    assert batch["prompt"][1] == reasoner_prompt("script 1")
    assert batch["answer"] == ["<SUMMARY>s0</SUMMARY>", "<SUMMARY>s1</SUMMARY>"]
    assert batch["rejected"][0][0]["kind"] == "wrong_scene"
    assert set(batch["labels"]) == set(LABEL_NAMES)
    assert batch["labels"]["scene_type"].tolist() == [0, 1]
    assert batch["labels"]["emotion"].tolist() == [0, 1]
    assert batch["labels"]["gender"].tolist() == [1, 0]
    assert batch["labels"]["num_people"].tolist() == [0, 1]


def test_speech_batch_pads_and_masks(corpus: Path):
    ds = SpeechDataset(corpus, AUDIO, num_frames=2)
    items = [ds[i] for i in range(3)]
    for item, (_, _, hops, prompt_hops, _, phonemes) in zip(items, CLIPS, strict=True):
        assert item["mel"].shape == (hops + 1, AUDIO.n_mels)
        assert item["prompt_mel"].shape == (prompt_hops + 1, AUDIO.n_mels)
        assert len(item["aligned_text"]) == len(item["mel"])
        assert item["durations"].sum() == len(item["mel"])
        assert ds.vocab.decode(item["phonemes"].tolist()) == phonemes

    batch = SpeechDataset.collate(items)
    b, n_max = 3, 46
    assert batch["mel"].shape == (b, n_max, AUDIO.n_mels)
    assert batch["mel_mask"].shape == (b, n_max) and batch["mel_mask"].dtype == torch.bool
    assert batch["mel_lengths"].tolist() == [31, 46, 26]
    assert batch["aligned_text"].shape == (b, n_max)
    assert batch["phonemes"].shape == (b, 6)
    assert batch["phoneme_mask"].sum(1).tolist() == [6, 5, 3]
    assert batch["prompt_mel"].shape == (b, 29, AUDIO.n_mels)
    assert batch["prompt_lengths"].tolist() == [21, 29, 17]
    assert batch["frames"].shape == (b, 2, 3, SIZE, SIZE)
    assert batch["labels"]["scene_type"].tolist() == [0, 1, 2]

    # Padding values: 0 mel, PAD_ID ids, and the masks cover exactly the real part.
    mask = batch["mel_mask"]
    assert (batch["mel"][~mask] == 0).all()
    assert (batch["aligned_text"][~mask] == PAD_ID).all()
    assert (batch["aligned_text"][mask] > NOTEXT_ID).all()
    assert (batch["phonemes"][~batch["phoneme_mask"]] == PAD_ID).all()
    assert (batch["prompt_mel"][~batch["prompt_mask"]] == 0).all()
    # The aligned text is each phoneme repeated by its duration.
    first = items[0]
    expected = torch.repeat_interleave(first["phonemes"], first["durations"])
    assert torch.equal(batch["aligned_text"][0, :31], expected)


def test_footage_batch(corpus: Path):
    ds = FootageDataset(corpus, AUDIO, split="train", num_frames=3)
    batch = FootageDataset.collate([ds[0], ds[1]])
    assert batch["clip_id"] == ["c0", "c1"]
    assert batch["speaker"] == ["spk0", "spk1"]
    assert batch["script"] == ["script 0", "script 1"]
    assert batch["react"] == ["react 0", "react 1"]
    assert batch["frames"].shape == (2, 3, 3, SIZE, SIZE)
    assert batch["wave"].shape == (2, 45 * AUDIO.hop_length)
    assert batch["wave_mask"].sum(1).tolist() == [30 * AUDIO.hop_length, 45 * AUDIO.hop_length]
    assert batch["mel"].shape == (2, 46, AUDIO.n_mels)
    assert batch["mel_mask"].sum(1).tolist() == [31, 46]
    assert batch["talker_index"].tolist() == [-1, 0]


def test_vocab_round_trip(corpus: Path, tmp_path: Path):
    vocab = PhonemeVocab.from_manifest(load_manifest(corpus))
    assert vocab.symbols[:3] == ["<pad>", "<unk>", "<notext>"]
    assert vocab.symbols[3] == "_"  # most frequent first
    assert vocab.encode(["h", "??"])[1] == UNK_ID
    vocab.save(tmp_path / "vocab.json")
    loaded = PhonemeVocab.load(tmp_path / "vocab.json")
    assert loaded.symbols == vocab.symbols
    assert loaded.encode(["_", "w", "z"]) == vocab.encode(["_", "w", "z"])
    (tmp_path / "bad.json").write_text(json.dumps({"symbols": ["a", "b"]}))
    with pytest.raises(ValueError, match="not a phoneme vocab"):
        PhonemeVocab.load(tmp_path / "bad.json")


def test_speech_dataloader_with_saved_vocab(corpus: Path, tmp_path: Path):
    vocab = PhonemeVocab.from_manifest(load_manifest(corpus, "train"))
    ds = SpeechDataset(corpus, AUDIO, split="val", vocab=vocab, num_frames=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=SpeechDataset.collate)
    batch = next(iter(loader))
    # "x" only occurs in the val clip, so a train-only vocab maps it to <unk>.
    assert batch["phonemes"][0].tolist() == [vocab.index["_"], UNK_ID, vocab.index["_"]]
