"""Training data for the speech generator: utterances and dubbing clips as tensors.

Text ids follow F5-TTS's convention inside the model (``-1`` pads), so the
corpus vocabulary (``<pad>`` 0, ``<unk>`` 1, ``<notext>`` 2) is shifted by one:
:func:`to_model_ids`. Mels, and for clips the frames, are decoded once and kept
in memory: the tiny corpus is ~60 MB of mels and ~110 MB of 48 px frames, and
re-decoding every epoch would cost more than the model step on 2 cores.

Shapes: ``n`` mel frames, ``m`` mel bins, ``p`` phonemes, ``f`` video frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dubops.config import AudioConfig
from dubops.data.datasets import (
    NOTEXT_ID,
    PAD_ID,
    PhonemeVocab,
    align_text,
    encode_labels,
    load_manifest,
    pad_stack,
)
from dubops.data.layout import CorpusLayout
from dubops.speech.text import PAUSE

if TYPE_CHECKING:
    from dubops.speech.settings import SpeechConfig

MODEL_NOTEXT = NOTEXT_ID - 1  # the no-text token as the model sees it


def to_model_ids(ids: torch.Tensor) -> torch.Tensor:
    """Corpus vocabulary ids -> model ids (padding becomes -1, as F5 expects)."""
    return ids - 1


def check_vocab_fits(vocab: PhonemeVocab, text_num_embeds: int) -> None:
    if len(vocab) - 1 > text_num_embeds:
        raise ValueError(
            f"speech.dit.text_num_embeds is {text_num_embeds} but the corpus vocabulary "
            f"needs {len(vocab) - 1}; raise speech.dit.text_num_embeds"
        )


class UtteranceDataset:
    """Every utterance of some splits: clip targets and, optionally, their prompts."""

    def __init__(
        self,
        root: str | Path,
        audio: AudioConfig,
        splits: Sequence[str],
        vocab: PhonemeVocab,
        include_prompts: bool = True,
    ) -> None:
        from dubops.audio import MelFrontEnd

        self.layout = CorpusLayout(Path(root))
        self.audio = audio
        self.vocab = vocab
        self._mel = MelFrontEnd(audio)
        manifest = load_manifest(root, list(splits))
        rows = []
        for row in manifest.itertuples():
            rows.append((row.audio_path, row.phonemes, row.phoneme_frames, row.speaker))
            if include_prompts:
                rows.append(
                    (
                        row.prompt_audio_path,
                        row.prompt_phonemes,
                        row.prompt_phoneme_frames,
                        row.speaker,
                    )
                )
        self.rows = rows
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def mel(self, i: int) -> torch.Tensor:
        if i not in self._cache:
            from dubops.audio import read_wav

            wave, _ = read_wav(self.layout.resolve(self.rows[i][0]), self.audio.sample_rate)
            self._cache[i] = self._mel(wave).T.contiguous()
        return self._cache[i]

    def lengths(self) -> list[int]:
        """Frames per item (from the durations, without decoding audio), for batching."""
        return [int(sum(frames)) for _, _, frames, _ in self.rows]

    def __getitem__(self, i: int) -> dict[str, Any]:
        _, phonemes, frames, speaker = self.rows[i]
        mel = self.mel(i)
        ids = self.vocab.encode(list(phonemes))
        return {
            "mel": mel,
            "phonemes": torch.tensor(ids, dtype=torch.long),
            "durations": torch.tensor([int(f) for f in frames], dtype=torch.long),
            "aligned": align_text(ids, [int(f) for f in frames], len(mel)),
            "speaker": speaker,
        }


def collate_utterances(items: Sequence[dict[str, Any]], text_mode: str) -> dict[str, Any]:
    """-> mel (b, n, m), mel_lengths, text (model ids; (b, n) aligned or (b, p)),
    phonemes / durations / phoneme_mask (b, p) in corpus ids."""
    mel, mel_mask = pad_stack([it["mel"] for it in items])
    phonemes, phoneme_mask = pad_stack([it["phonemes"] for it in items], PAD_ID)
    durations, _ = pad_stack([it["durations"] for it in items])
    if text_mode == "aligned":
        text, _ = pad_stack([it["aligned"] for it in items], PAD_ID)
    else:
        text = phonemes
    batch = {
        "mel": mel,
        "mel_lengths": mel_mask.sum(1),
        "text": to_model_ids(text),
        "phonemes": phonemes,
        "phoneme_mask": phoneme_mask,
        "durations": durations,
    }
    if "f0" in items[0]:
        batch["f0"] = pad_stack([it["f0"] for it in items])[0]
        batch["prompt_logf0"] = torch.tensor([it["prompt_logf0"] for it in items])
        batch["prompt_level"] = torch.tensor([it["prompt_level"] for it in items])
    if "prompt_mel" in items[0]:
        prompt_mel, prompt_mask = pad_stack([it["prompt_mel"] for it in items])
        batch["prompt_mel"] = prompt_mel
        batch["prompt_lengths"] = prompt_mask.sum(1)
    if "frames" in items[0]:
        batch["frames"] = pad_stack([it["frames"] for it in items])[0]
        batch["frame_lengths"] = torch.tensor([len(it["frames"]) for it in items])
        batch["labels"] = {
            name: torch.tensor([it["labels"][name] for it in items], dtype=torch.long)
            for name in items[0]["labels"]
        }
    return batch


class ClipDataset(UtteranceDataset):
    """Dubbing clips (targets only) with every video frame and the conclusion labels."""

    def __init__(
        self,
        root: str | Path,
        audio: AudioConfig,
        splits: Sequence[str],
        vocab: PhonemeVocab,
        frame_size: int,
        word_slots: bool = False,
        prompts: bool = False,
        pitch: bool = False,
    ) -> None:
        super().__init__(root, audio, splits, vocab, include_prompts=False)
        self.manifest = load_manifest(root, list(splits))
        # F0 contours and prompt references, the pitch head's targets (dubops.speech.pitch).
        self.pitch: dict[str, tuple[np.ndarray, float, float]] | None = None
        if pitch:
            from dubops.speech.pitch_targets import corpus_pitch

            ids = list(self.manifest["clip_id"])
            self.pitch = corpus_pitch(root, ids, audio, super().lengths())
        self.frame_size = frame_size
        self._frames: dict[int, torch.Tensor] = {}
        # Each clip's timbre prompt mel, for a prompt-context objective (dubops.speech.context).
        self.prompts = prompts
        self._prompt_mels: dict[int, torch.Tensor] = {}
        if word_slots:
            self._add_pause_slots()

    @classmethod
    def train_val(
        cls,
        root: str | Path,
        audio: AudioConfig,
        vocab: PhonemeVocab,
        speech: SpeechConfig,
        context: str = "self",
    ) -> tuple[ClipDataset, ClipDataset]:
        """The train and val splits as a stage-2.2 model of ``speech`` reads them.

        Frame size and pause slots come from the model's settings, so every stage
        that trains or refines it (ControlNet, duration refinement, graph) sees
        the same sequences; a ``context`` other than ``self`` adds the prompts.
        """
        size, slots = speech.controlnet.frame_size, speech.duration.word_slots
        extra = {"prompts": context != "self", "pitch": speech.pitch.enabled}
        return (
            cls(root, audio, ["train"], vocab, size, word_slots=slots, **extra),
            cls(root, audio, ["val"], vocab, size, word_slots=slots, **extra),
        )

    def lengths(self) -> list[int]:
        """Frames per item; with prompts, the prompt's too (the sequence the model reads)."""
        clips = super().lengths()
        if not self.prompts:
            return clips
        prompts = [int(sum(f)) for f in self.manifest["prompt_phoneme_frames"]]
        return [c + p for c, p in zip(clips, prompts, strict=True)]

    def prompt_mel(self, i: int) -> torch.Tensor:
        """``(n_p, m)``: the mel of clip ``i``'s timbre prompt (another utterance, calm)."""
        if i not in self._prompt_mels:
            from dubops.audio import read_wav

            path = self.layout.resolve(self.manifest.iloc[i]["prompt_audio_path"])
            wave, _ = read_wav(path, self.audio.sample_rate)
            self._prompt_mels[i] = self._mel(wave).T.contiguous()
        return self._prompt_mels[i]

    def _add_pause_slots(self) -> None:
        """Phonemes and durations with a 0-frame pause at each boundary that had none.

        The scripts are phonemized as inference phonemizes them
        (:mod:`dubops.speech.pause_slots`); the aligned text is unchanged, since a
        0-frame phoneme spans no mel frame.
        """
        from dubops.speech.pause_slots import insert_pause_slots, slotted_phonemes

        rows = []
        for (path, phonemes, frames, speaker), script in zip(
            self.rows, self.manifest["script"], strict=True
        ):
            names, slotted = insert_pause_slots(
                list(phonemes), list(frames), slotted_phonemes(script, audio=self.audio)
            )
            rows.append((path, names, slotted, speaker))
        self.rows = rows

    def frames(self, i: int) -> torch.Tensor:
        """``(f, 3, s, s)`` uint8 frames at the video rate, resized to ``frame_size``."""
        if i not in self._frames:
            self._frames[i] = load_frames(
                self.layout.resolve(self.manifest.iloc[i]["video_path"]), self.frame_size
            )
        return self._frames[i]

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = super().__getitem__(i)
        item["frames"] = self.frames(i)
        item["labels"] = encode_labels(self.manifest.iloc[i])
        item["clip_id"] = self.manifest.iloc[i]["clip_id"]
        item["pause_id"] = self.vocab.index.get(PAUSE, -1)  # pauses may get 0 frames
        if self.prompts:
            item["prompt_mel"] = self.prompt_mel(i)
        if self.pitch is not None:
            f0, reference, level = self.pitch[item["clip_id"]]
            f0 = torch.from_numpy(np.asarray(f0, dtype=np.float32))[: len(item["mel"])]
            item["f0"] = torch.nn.functional.pad(f0, (0, len(item["mel"]) - len(f0)))
            item["prompt_logf0"] = reference
            item["prompt_level"] = level
        return item


def load_frames(path: str | Path, size: int) -> torch.Tensor:
    """Every frame of a video, area-resized to ``size`` px: ``(f, 3, size, size)`` uint8."""
    import torch.nn.functional as nnf

    from dubops.video import read_video

    frames, _ = read_video(path)
    if len(frames) == 0:
        raise ValueError(f"video {path} has no frames")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = nnf.interpolate(x, size=(size, size), mode="area")
    return x.round().clamp(0, 255).to(torch.uint8)
