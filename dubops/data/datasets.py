"""Torch datasets over a corpus folder for the three consumers, with their collates.

* :class:`ReasonerDataset`: frames + prompt + chain-of-thought answer (CoT SFT, MPO).
* :class:`SpeechDataset`: target mel, phonemes, durations, frame-aligned text,
  the timbre prompt's mel, frames (DiT pretraining, ControlNet tuning).
* :class:`FootageDataset`: what the reference footage library embeds.

Shapes: ``b`` batch, ``k`` sampled video frames, ``h``/``w`` frame size,
``n`` mel frames, ``m`` mel bins, ``p`` phonemes, ``t`` samples. Collates pad
to the batch maximum and return boolean masks that are True on real frames;
padded mels and waves are 0 (as F5-TTS pads), padded ids are ``PAD_ID``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dubops.data.layout import CorpusLayout
from dubops.data.schema import AGES, EMOTIONS, GENDERS, SCENE_TYPES
from dubops.errors import InputError
from dubops.fileio import write_json

if TYPE_CHECKING:
    import torch

    from dubops.config import AudioConfig

PAD_ID = 0
UNK_ID = 1
# The "no text here" token: DESIGN says the prompt region of the aligned text
# is filled with it in training, so a user's prompt needs no forced alignment.
NOTEXT_ID = 2
_SPECIALS = ("<pad>", "<unk>", "<notext>")

REASONER_INSTRUCTION = (
    "Watch the silent clip and read its script. Reason in four tagged stages, "
    "<SUMMARY>, <CAPTION>, <REASONING> and <CONCLUSION>, and conclude the dubbing "
    "style (dialogue, monologue or narration) and the speaker's gender, age and emotion."
)

# Label columns -> the schema's value tuples (num_people is already an index).
_LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "scene_type": SCENE_TYPES,
    "gender": GENDERS,
    "age": AGES,
    "emotion": EMOTIONS,
}
LABEL_NAMES: tuple[str, ...] = ("scene_type", "num_people", "gender", "age", "emotion")


def load_manifest(root: str | Path, split: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The corpus manifest, optionally only some splits, with a fresh 0..N-1 index."""
    layout = CorpusLayout(Path(root))
    if not layout.manifest.is_file():
        raise InputError(
            f"no manifest at {layout.manifest}; run `dubops data synth --out {layout.root}` first"
        )
    df = pd.read_parquet(layout.manifest)
    if split is not None:
        wanted = [split] if isinstance(split, str) else list(split)
        df = df[df["split"].isin(wanted)]
        if df.empty:
            raise InputError(f"manifest {layout.manifest} has no clips in split(s) {wanted}")
    return df.reset_index(drop=True)


def reasoner_prompt(script: str) -> str:
    """The reasoner's text prompt: the instruction, then the line to dub."""
    return f"{REASONER_INSTRUCTION}\nScript: {script}"


def encode_labels(row: Any) -> dict[str, int]:
    """The conclusion labels of a manifest row as class indices."""
    labels = {name: values.index(row[name]) for name, values in _LABEL_VALUES.items()}
    labels["num_people"] = int(row["num_people"])
    return {name: labels[name] for name in LABEL_NAMES}


class PhonemeVocab:
    """Phoneme symbol <-> id, with ``<pad>`` = 0, ``<unk>`` = 1, ``<notext>`` = 2."""

    def __init__(self, symbols: Sequence[str]) -> None:
        self.symbols = [*_SPECIALS, *(s for s in symbols if s not in _SPECIALS)]
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def from_manifest(cls, df: pd.DataFrame) -> PhonemeVocab:
        """Every symbol in the target and prompt phonemes, most frequent first."""
        counts: Counter[str] = Counter()
        for column in ("phonemes", "prompt_phonemes"):
            for seq in df[column]:
                counts.update(seq)
        return cls(sorted(counts, key=lambda s: (-counts[s], s)))

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, phonemes: Sequence[str]) -> list[int]:
        return [self.index.get(p, UNK_ID) for p in phonemes]

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.symbols[i] for i in ids if i != PAD_ID]

    def save(self, path: str | Path) -> None:
        write_json(path, {"symbols": self.symbols})

    @classmethod
    def load(cls, path: str | Path) -> PhonemeVocab:
        symbols = json.loads(Path(path).read_text())["symbols"]
        if tuple(symbols[: len(_SPECIALS)]) != _SPECIALS:
            raise ValueError(f"{path} is not a phoneme vocab: it must start with {_SPECIALS}")
        return cls(symbols)


def sample_frames(path: str | Path, num_frames: int) -> torch.Tensor:
    """``num_frames`` frames spread evenly over the video -> (k, 3, h, w) float in [0, 1].

    Each frame is the middle of one of ``k`` equal segments, so short and long
    clips are covered alike.
    """
    import torch

    from dubops.video import read_video

    frames, _fps = read_video(path)  # (f, h, w, 3) uint8
    if len(frames) == 0:
        raise ValueError(f"video {path} has no frames")
    idx = ((np.arange(num_frames) + 0.5) * len(frames) / num_frames).astype(int)
    picked = torch.from_numpy(np.ascontiguousarray(frames[idx]))  # (k, h, w, 3)
    return picked.permute(0, 3, 1, 2).float() / 255.0


def align_text(ids: Sequence[int], frames: Sequence[int], num_frames: int) -> torch.Tensor:
    """Each phoneme id repeated by its duration -> (n,), exactly ``num_frames`` long.

    Durations sum to the manifest's mel frames; a wav re-read at another rate
    can differ by a frame or two, absorbed at the end (the trailing pause).
    """
    import torch

    aligned = torch.repeat_interleave(torch.tensor(ids, dtype=torch.long), torch.tensor(frames))
    gap = num_frames - len(aligned)
    if abs(gap) > 2:
        raise ValueError(
            f"phoneme durations sum to {len(aligned)} frames but the mel has {num_frames}"
        )
    if gap > 0:
        aligned = torch.cat([aligned, aligned[-1:].expand(gap)])
    return aligned[:num_frames]


def pad_stack(items: Sequence[torch.Tensor], value: float = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad along the first axis to the longest -> ``(padded (b, n, ...), mask (b, n))``."""
    import torch

    longest = max(len(x) for x in items)
    out = items[0].new_full((len(items), longest, *items[0].shape[1:]), value)
    mask = torch.zeros(len(items), longest, dtype=torch.bool)
    for i, x in enumerate(items):
        out[i, : len(x)] = x
        mask[i, : len(x)] = True
    return out, mask


def _stack_labels(items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
    import torch

    return {
        name: torch.tensor([it["labels"][name] for it in items], dtype=torch.long)
        for name in LABEL_NAMES
    }


class _CorpusDataset:
    """Shared base: the manifest rows of some splits and the layout to resolve paths."""

    def __init__(
        self, root: str | Path, split: str | Sequence[str] | None = None, num_frames: int = 4
    ) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        self.layout = CorpusLayout(Path(root))
        self.manifest = load_manifest(root, split)
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.manifest)

    def _frames(self, row: Any) -> torch.Tensor:
        return sample_frames(self.layout.resolve(row["video_path"]), self.num_frames)


class ReasonerDataset(_CorpusDataset):
    """Frames, prompt and the chain-of-thought answer for the reasoner."""

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.manifest.iloc[i]
        return {
            "clip_id": row["clip_id"],
            "frames": self._frames(row),  # (k, 3, h, w)
            "prompt": reasoner_prompt(row["script"]),
            "answer": row["cot"],
            "rejected": json.loads(row["rejected"]) if row["rejected"] else [],
            "labels": encode_labels(row),
        }

    @staticmethod
    def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """-> frames (b, k, 3, h, w), lists of strings, labels {name: (b,)}."""
        import torch

        return {
            "clip_id": [it["clip_id"] for it in items],
            "frames": torch.stack([it["frames"] for it in items]),
            "prompt": [it["prompt"] for it in items],
            "answer": [it["answer"] for it in items],
            "rejected": [it["rejected"] for it in items],
            "labels": _stack_labels(items),
        }


class SpeechDataset(_CorpusDataset):
    """Target mel with its phonemes, durations and frame-aligned text, the prompt, frames.

    Without a ``vocab`` one is built from the whole manifest (every split), so
    training and held-out datasets share ids; a trainer saves it next to its
    checkpoint with :meth:`PhonemeVocab.save`.
    """

    def __init__(
        self,
        root: str | Path,
        audio: AudioConfig,
        split: str | Sequence[str] | None = None,
        vocab: PhonemeVocab | None = None,
        num_frames: int = 4,
    ) -> None:
        from dubops.audio import MelFrontEnd

        super().__init__(root, split, num_frames)
        self.audio = audio
        self.mel = MelFrontEnd(audio)
        self.vocab = vocab or PhonemeVocab.from_manifest(load_manifest(root))

    def _mel(self, rel: str) -> torch.Tensor:
        from dubops.audio import read_wav

        wave, _ = read_wav(self.layout.resolve(rel), self.audio.sample_rate)
        return self.mel(wave).T.contiguous()  # (n, m)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        row = self.manifest.iloc[i]
        mel = self._mel(row["audio_path"])  # (n, m)
        ids = self.vocab.encode(list(row["phonemes"]))
        durations = [int(d) for d in row["phoneme_frames"]]
        return {
            "clip_id": row["clip_id"],
            "speaker": row["speaker"],
            "mel": mel,
            "phonemes": torch.tensor(ids, dtype=torch.long),  # (p,)
            "durations": torch.tensor(durations, dtype=torch.long),  # (p,)
            "aligned_text": align_text(ids, durations, len(mel)),  # (n,)
            "prompt_mel": self._mel(row["prompt_audio_path"]),  # (n_p, m)
            "prompt_text": row["prompt_text"],
            "script": row["script"],
            "frames": self._frames(row),  # (k, 3, h, w)
            "labels": encode_labels(row),
        }

    @staticmethod
    def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Pad to the batch maximum; every padded tensor comes with its ``*_mask`` (b, ...).

        -> mel (b, n, m), mel_mask (b, n), phonemes / durations (b, p), phoneme_mask,
        aligned_text (b, n) (masked by mel_mask), prompt_mel (b, n_p, m), prompt_mask,
        mel_lengths / prompt_lengths (b,), frames (b, k, 3, h, w), labels {name: (b,)}.
        """
        import torch

        mel, mel_mask = pad_stack([it["mel"] for it in items])
        phonemes, phoneme_mask = pad_stack([it["phonemes"] for it in items], PAD_ID)
        durations, _ = pad_stack([it["durations"] for it in items])
        aligned, _ = pad_stack([it["aligned_text"] for it in items], PAD_ID)
        prompt_mel, prompt_mask = pad_stack([it["prompt_mel"] for it in items])
        return {
            "clip_id": [it["clip_id"] for it in items],
            "speaker": [it["speaker"] for it in items],
            "mel": mel,
            "mel_mask": mel_mask,
            "mel_lengths": mel_mask.sum(1),
            "phonemes": phonemes,
            "phoneme_mask": phoneme_mask,
            "durations": durations,
            "aligned_text": aligned,
            "prompt_mel": prompt_mel,
            "prompt_mask": prompt_mask,
            "prompt_lengths": prompt_mask.sum(1),
            "prompt_text": [it["prompt_text"] for it in items],
            "script": [it["script"] for it in items],
            "frames": torch.stack([it["frames"] for it in items]),
            "labels": _stack_labels(items),
        }


class FootageDataset(_CorpusDataset):
    """One library entry per clip: frames, script, react line, target wave and mel."""

    def __init__(
        self,
        root: str | Path,
        audio: AudioConfig,
        split: str | Sequence[str] | None = None,
        num_frames: int = 4,
    ) -> None:
        from dubops.audio import MelFrontEnd

        super().__init__(root, split, num_frames)
        self.audio = audio
        self.mel = MelFrontEnd(audio)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        from dubops.audio import read_wav

        row = self.manifest.iloc[i]
        wave, _ = read_wav(self.layout.resolve(row["audio_path"]), self.audio.sample_rate)
        wave_t = torch.from_numpy(wave)  # (t,)
        return {
            "clip_id": row["clip_id"],
            "speaker": row["speaker"],
            "script": row["script"],
            "react": row["react"],
            "frames": self._frames(row),  # (k, 3, h, w)
            "wave": wave_t,
            "mel": self.mel(wave_t).T.contiguous(),  # (n, m)
            "talker_index": int(row["talker_index"]),
            "labels": encode_labels(row),
        }

    @staticmethod
    def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """-> frames (b, k, 3, h, w), wave (b, t) + wave_mask, mel (b, n, m) + mel_mask,
        talker_index (b,), labels {name: (b,)}, lists of strings."""
        import torch

        wave, wave_mask = pad_stack([it["wave"] for it in items])
        mel, mel_mask = pad_stack([it["mel"] for it in items])
        return {
            "clip_id": [it["clip_id"] for it in items],
            "speaker": [it["speaker"] for it in items],
            "script": [it["script"] for it in items],
            "react": [it["react"] for it in items],
            "frames": torch.stack([it["frames"] for it in items]),
            "wave": wave,
            "wave_mask": wave_mask,
            "mel": mel,
            "mel_mask": mel_mask,
            "talker_index": torch.tensor([it["talker_index"] for it in items], dtype=torch.long),
            "labels": _stack_labels(items),
        }
