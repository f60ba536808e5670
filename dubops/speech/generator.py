"""The speech generator's inference object: script + prompt + video -> 24 kHz speech.

:class:`SpeechGenerator` bundles the vocabulary, the flow model, the stage-2.2
parts (ControlNet, conditions, duration predictor) when present, and a vocoder.
``prepare`` validates inputs (clear :class:`SpeechInputError` / ``ScriptError``),
phonemizes the script, fits the phoneme durations exactly into the video slot and
builds the conditions; ``sample`` runs multi-condition guided sampling for
several prepared clips in one batch; ``vocode`` makes the wave. ``generate`` is
the three for one clip. Ablations (no video, no conclusion, no duration
predictor) are switches on the same call.

A graph-stage folder (``dubops train graph``) adds Authentic-Dubber's emotion
graph: each clip's retrieved footage goes in as ``footage``. Retrieval itself
is :mod:`dubops.inference.retrieval`'s: the generator only speaks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dubops.config import AudioConfig
from dubops.data.datasets import PhonemeVocab
from dubops.data.schema import AGES, EMOTIONS, GENDERS, SCENE_TYPES
from dubops.errors import InputError
from dubops.speech.cfm import Guidance
from dubops.speech.duration import predict_frames
from dubops.speech.guidance import multi_condition
from dubops.speech.inputs import SpeechInputError, check_slot, prepare_prompt, slot_frames
from dubops.speech.lip_align import align_to_mouth, mouth_tracks
from dubops.speech.pieces import split_plan
from dubops.speech.settings import GuidanceScales, LipAlignConfig, SpeechConfig
from dubops.speech.synthesis import aligned_text, generate_mel, unaligned_text
from dubops.speech.text import PAUSE

logger = logging.getLogger(__name__)

_FIELDS = {"scene_type": SCENE_TYPES, "gender": GENDERS, "age": AGES, "emotion": EMOTIONS}


@dataclass(frozen=True)
class Ablation:
    """Conditions switched off at inference (the paper's ablation table)."""

    visual: bool = True
    conclusion: bool = True
    duration_predictor: bool = True

    @classmethod
    def named(cls, name: str) -> Ablation:
        table = {
            "none": cls(),
            "no-visual": cls(visual=False),
            "no-conclusion": cls(conclusion=False),
            "no-duration": cls(duration_predictor=False),
        }
        if name not in table:
            raise InputError(f"ablation {name!r} is unknown; choose one of {sorted(table)}")
        return table[name]


def conclusion_labels(conclusion: Any) -> dict[str, torch.Tensor]:
    """A Conclusion (or dict with its four fields) -> ``{field: (1,) class index}``."""
    values = conclusion if isinstance(conclusion, dict) else conclusion.__dict__
    labels = {}
    for name, options in _FIELDS.items():
        value = values.get(name)
        if value not in options:
            raise SpeechInputError("conclusion", f"{name} must be one of {options}, got {value!r}")
        labels[name] = torch.tensor([options.index(value)])
    return labels


def _frames_tensor(frames: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """``(f, h, w, 3)`` or ``(f, 3, h, w)`` uint8 -> ``(1, f, 3, size, size)`` uint8."""
    import torch.nn.functional as nnf

    x = torch.as_tensor(np.asarray(frames))
    if x.ndim != 4 or 3 not in (x.shape[1], x.shape[-1]):
        raise SpeechInputError("video", f"frames must be (f, h, w, 3) RGB, got {tuple(x.shape)}")
    if x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    # 64 frames at a time: a long clip never has a float copy of all its frames.
    parts = [
        nnf.interpolate(x[i : i + 64].float(), size=(size, size), mode="area")
        .round()
        .clamp(0, 255)
        .to(torch.uint8)
        for i in range(0, len(x), 64)
    ]
    return torch.cat(parts)[None]


def clip_durations(
    model: Any,
    item: dict,
    ids: torch.Tensor,
    video: torch.Tensor,
    tokens: torch.Tensor,
    target_frames: int,
    speech: SpeechConfig,
    ablation: Ablation = Ablation(),
) -> torch.Tensor:
    """Integer frames per phoneme ``(p,)`` summing to ``target_frames``.

    The predictor's (or, for the no-duration ablation, an even spread), fitted
    to the slot; with ``item["mouth"]`` tracks and the video kept, the words
    then move onto the talker's mouth (``speech.lip_align``).
    """
    device = ids.device
    pause = (ids == item["pause_id"]) if "pause_id" in item else None
    if ablation.duration_predictor:
        keep_v = torch.tensor([ablation.visual], device=device)
        f = torch.tensor([video.shape[1]], device=device)
        mask = torch.ones_like(ids[None], dtype=torch.bool)
        log_dur = model.predict_log_durations(ids[None], mask, video, f, tokens, keep_v)[0]
    else:
        log_dur = torch.zeros(len(ids), device=device)
    durations = predict_frames(log_dur, pause=pause, total_frames=target_frames)
    mouth = item.get("mouth")
    if mouth is None or pause is None or not (ablation.visual and ablation.duration_predictor):
        return durations
    aligned = align_to_mouth(durations.cpu().numpy(), pause.cpu().numpy(), mouth, speech.lip_align)
    return torch.from_numpy(aligned.frames).to(device)


@dataclass
class SpeechPlan:
    """One clip ready for the sampler: everything but the noise.

    ``condition`` is the ControlNet input of each guidance branch ``(r, n, d)``
    (``n`` = prompt + target frames); ``text`` the model ids ``(1, nt)``;
    ``phonemes`` the corpus ids with their ``durations`` and ``pause`` slots, which
    let a long plan be cut into pieces (:mod:`dubops.speech.pieces`). Plans of
    several clips go through one batched sampler call (:func:`sample_plans`).
    """

    prompt_mel: torch.Tensor
    text: torch.Tensor
    target_frames: int
    condition: torch.Tensor
    guidance: Guidance
    speech: SpeechConfig
    seed: int = 0
    durations: torch.Tensor | None = None
    phonemes: torch.Tensor | None = None
    pause_id: int | None = None
    # The timbre prompt's median log-F0: with a pitch head, the sampled mel is voiced
    # from it (dubops.speech.pitch); None leaves the mel as sampled.
    prompt_logf0: float | None = None

    @property
    def pause(self) -> torch.Tensor | None:
        """Which phonemes are pause slots (None without ``phonemes`` or a pause id)."""
        if self.phonemes is None or self.pause_id is None:
            return None
        return self.phonemes == self.pause_id

    @property
    def frames(self) -> int:
        return len(self.prompt_mel) + self.target_frames

    def batch_key(self) -> str:
        """Plans that may share a sampler call: same steps, method and guidance scales."""
        cn = self.speech.controlnet
        return self.speech.sampler.model_dump_json() + cn.guidance.model_dump_json()


def plan_clip_mel(
    model: Any,
    item: dict,
    prompt_mel: torch.Tensor,
    target_frames: int,
    speech: SpeechConfig,
    ablation: Ablation = Ablation(),
    emotion: torch.Tensor | None = None,
    seed: int = 0,
    phonemes: torch.Tensor | None = None,
    footage: dict[str, torch.Tensor] | None = None,
    prompt_logf0: float | None = None,
) -> SpeechPlan:
    """Stage 2.2's conditions for one clip: durations, text and the ControlNet input.

    ``item`` carries ``frames (f, 3, s, s)``, ``labels`` and ``phonemes`` (corpus ids);
    durations come from the predictor fitted to ``target_frames`` (or are spread
    evenly over the slot for the no-duration ablation), then, when ``item`` has
    ``mouth`` tracks ``(k, f)``, their words move onto the talker's mouth
    (:mod:`dubops.speech.lip_align`, ``speech.lip_align``). ``footage`` (one clip's
    graph inputs, leading size 1) feeds a graph-stage model's emotion module.
    """
    device = next(model.parameters()).device
    ids = (item["phonemes"] if phonemes is None else phonemes).to(device)
    frames = item["frames"][None].to(device)
    f = torch.tensor([frames.shape[1]], device=device)
    labels = {k: torch.as_tensor(v).reshape(1).to(device) for k, v in item["labels"].items()}
    keep_v = torch.tensor([ablation.visual], device=device)
    keep_c = torch.tensor([ablation.conclusion], device=device)
    with torch.no_grad():
        video = model.visual(frames)
        tokens = model.conclusion(labels, keep_c)
        durations = clip_durations(model, item, ids, video, tokens, target_frames, speech, ablation)
        # An ablated condition is dropped in every branch, so its guidance term is
        # zero whatever its scale; unit scales then stay one conditional pass.
        guidance, keeps = multi_condition(speech.controlnet.guidance)
        n_p = len(prompt_mel)
        n = n_p + target_frames
        # The video covers the target only: the prompt's frames read the learned
        # "no video" embedding, per frame.
        keep_v = torch.zeros(len(keeps), n, dtype=torch.bool, device=device)
        keep_v[:, n_p:] = torch.tensor([k and ablation.visual for k, _ in keeps], device=device)[
            :, None
        ]
        keep_c = torch.tensor([c and ablation.conclusion for _, c in keeps], device=device)
        tokens = model.conclusion({k: v.repeat(len(keeps)) for k, v in labels.items()}, keep_c)
        visual = torch.zeros(len(keeps), n, video.shape[-1], device=device)
        visual[:, n_p:] = model.condition_visual(video, f, target_frames)
        emotions = None if emotion is None else emotion.to(device).repeat(len(keeps), 1, 1)
        if footage is not None:
            if emotions is not None:
                raise SpeechInputError("footage", "give emotion_cond or footage, not both")
            branches = {
                name: v.to(device).repeat(len(keeps), *([1] * (v.dim() - 1)))
                for name, v in footage.items()
            }
            emotions = model.graph_emotion(visual, keep_v, branches)
        condition = model.fusion(visual, keep_v, tokens, emotions)
    if speech.text_mode == "aligned":
        text = aligned_text(len(prompt_mel), ids.cpu(), durations)
    else:
        text = unaligned_text(ids.cpu()[:0], ids.cpu())
    return SpeechPlan(
        prompt_mel,
        text,
        target_frames,
        condition,
        guidance,
        speech,
        seed,
        durations.cpu(),
        ids.cpu(),
        item.get("pause_id"),
        prompt_logf0,
    )


# Clips share a sampler call only when their lengths are within this ratio: on a CPU the
# sampler is compute-bound, so the padding a longer batch-mate forces costs what it adds.
MAX_PADDING_RATIO = 1.15


def sample_plans(
    model: Any,
    plans: list[SpeechPlan],
    max_piece_frames: int | None = None,
    max_batch: int | None = None,
    audio: AudioConfig | None = None,
) -> list[torch.Tensor]:
    """Target mels ``(target_frames, m)`` of several clips, batched by length.

    A plan longer than ``max_piece_frames`` is cut into pieces at word boundaries
    (:func:`dubops.speech.pieces.split_plan`) whose mels are joined back. Plans
    (or pieces) with the same sampler settings are sorted by length and cut into
    groups whose longest is at most :data:`MAX_PADDING_RATIO` times their
    shortest, of at most ``max_batch``; each group is one sampler call. One clip
    samples exactly as it always has; several are padded to the longest, masked,
    and each starts from the noise its own seed draws for its own length, so a
    clip's mel does not depend on its batch-mates beyond float rounding.
    """
    pieces: list[SpeechPlan] = []
    owner: list[int] = []
    for i, plan in enumerate(plans):
        for piece in split_plan(plan, max_piece_frames):
            pieces.append(piece)
            owner.append(i)
    mels: list[torch.Tensor] = [torch.empty(0)] * len(pieces)
    settings: dict[str, list[int]] = {}
    for i, piece in enumerate(pieces):
        settings.setdefault(piece.batch_key(), []).append(i)
    for rows in settings.values():
        for group in _length_groups(rows, pieces, max_batch):
            for i, mel in zip(group, _sample_group(model, [pieces[i] for i in group]), strict=True):
                mels[i] = mel
    joined: list[list[torch.Tensor]] = [[] for _ in plans]
    for i, mel in zip(owner, mels, strict=True):
        joined[i].append(mel)
    whole = [parts[0] if len(parts) == 1 else torch.cat(parts) for parts in joined]
    if audio is None:
        return whole
    return [voice(model, plan, mel, audio) for plan, mel in zip(plans, whole, strict=True)]


def voice(model: Any, plan: SpeechPlan, mel: torch.Tensor, audio: AudioConfig) -> torch.Tensor:
    """``mel (target_frames, m)`` with the pitch head's harmonic comb (unchanged without one).

    The head reads the fully conditioned branch's condition over the target
    frames and the frames' phonemes; its contour is relative to the prompt's
    median log-F0 (:mod:`dubops.speech.pitch`, :mod:`dubops.speech.harmonics`).
    """
    head = getattr(model, "pitch", None)
    pitch = plan.speech.pitch
    if head is None or plan.prompt_logf0 is None or plan.durations is None:
        return mel
    from dubops.speech.harmonics import voice_mel
    from dubops.speech.pitch import contour, frame_phonemes, loudness_reference, relevel

    n_p, n = len(plan.prompt_mel), plan.target_frames
    device = next(model.parameters()).device
    with torch.no_grad():
        condition = plan.condition[:1, n_p : n_p + n].to(device)
        ids = frame_phonemes(plan.phonemes[None], plan.durations[None], n).to(device)
        delta, voiced, loud = head(condition, ids)
    if pitch.strength:
        f0 = contour(
            delta[0],
            voiced[0],
            plan.prompt_logf0,
            pitch.voicing_threshold,
            pitch.smooth_frames,
            pitch.contour_scale,
        )
        mel = voice_mel(mel.T, f0, audio, pitch.strength, pitch.envelope_bins).T.contiguous()
    # Levelled after the comb: the comb moves a frame's loudness (its valleys lose more
    # than its peaks gain), and the head's target is the loudness of harmonic speech.
    if pitch.loudness_strength:
        level = loudness_reference(plan.prompt_mel)
        mel = relevel(mel, loud[0].cpu(), level, pitch.loudness_strength)
    return mel


def _length_groups(
    rows: list[int], plans: list[SpeechPlan], max_batch: int | None = None
) -> list[list[int]]:
    groups: list[list[int]] = []
    for i in sorted(rows, key=lambda r: plans[r].frames):
        if (
            groups
            and plans[i].frames <= plans[groups[-1][0]].frames * MAX_PADDING_RATIO
            and (max_batch is None or len(groups[-1]) < max_batch)
        ):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _sample_group(model: Any, plans: list[SpeechPlan]) -> list[torch.Tensor]:
    import torch.nn.functional as nnf

    first = plans[0]
    if len(plans) == 1:
        mel = generate_mel(
            model.flow,
            first.prompt_mel,
            first.text,
            first.target_frames,
            first.speech.sampler,
            guidance=first.guidance,
            control=model.controlnet.control(first.condition),
            seed=first.seed,
        )
        return [mel]
    device = next(model.parameters()).device
    b, n = len(plans), max(p.frames for p in plans)
    n_p = max(len(p.prompt_mel) for p in plans)
    m = first.prompt_mel.shape[-1]
    cond = torch.stack([nnf.pad(p.prompt_mel, (0, 0, 0, n_p - len(p.prompt_mel))) for p in plans])
    lens = torch.tensor([len(p.prompt_mel) for p in plans])
    text = torch.full((b, max(p.text.shape[1] for p in plans)), -1, dtype=torch.long)
    noise = torch.zeros(b, n, m)
    for i, p in enumerate(plans):
        text[i, : p.text.shape[1]] = p.text[0]
        rng = torch.Generator().manual_seed(p.seed)  # the noise a lone call with this seed draws
        noise[i, : p.frames] = torch.randn(p.frames, m, generator=rng)
    # Guidance branches are stacked branch-major: row r * b + i is clip i's branch r.
    condition = torch.stack(
        [nnf.pad(p.condition, (0, 0, 0, n - p.condition.shape[1])) for p in plans], dim=1
    )
    condition = condition.reshape(-1, n, condition.shape[-1])
    mel = model.flow.sample(
        cond.to(device),
        text.to(device),
        torch.tensor([p.frames for p in plans], device=device),
        lens=lens.to(device),
        sampler=first.speech.sampler,
        noise=noise.to(device),
        guidance=first.guidance,
        control=model.controlnet.control(condition.to(device)),
        exact_duration=True,
    )
    return [mel[i, len(p.prompt_mel) : p.frames].cpu() for i, p in enumerate(plans)]


def dub_clip_mel(model: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
    """One clip's target mel ``(target_frames, m)``: :func:`plan_clip_mel`'s arguments,
    then sampled alone (the training stages' validation samples)."""
    return sample_plans(model, [plan_clip_mel(model, *args, **kwargs)])[0]


class SpeechGenerator:
    """Script + timbre prompt + silent video (or a duration) -> speech at 24 kHz.

    ``generate`` is :meth:`prepare` (inputs checked, phonemes, durations,
    conditions), :meth:`sample` (the flow sampler, batched over clips) and
    :meth:`vocode`; :class:`dubops.inference.DubbingPipeline` calls the three
    parts on a batch of clips.
    """

    def __init__(
        self,
        model: Any,
        vocab: PhonemeVocab,
        speech: SpeechConfig,
        audio: AudioConfig,
        vocoder: Any = None,
    ) -> None:
        from dubops.audio import MelFrontEnd
        from dubops.speech.vocoder import build_vocoder

        self.model = model.eval()
        self.vocab = vocab
        self.speech = speech
        self.audio = audio
        self.mel = MelFrontEnd(audio)
        self.vocoder = vocoder or build_vocoder(speech.vocoder, speech.vocoder_path, audio=audio)

    @classmethod
    def from_dir(
        cls,
        run_dir: str | Path,
        audio: AudioConfig | None = None,
        lip_align: LipAlignConfig | None = None,
    ) -> SpeechGenerator:
        """A finished ``controlnet`` or ``graph`` run folder (it points at its DiT folder).

        Args:
            lip_align: inference-time lip alignment in place of the folder's own
                (``speech.lip_align`` of the caller's config; folders trained before
                it existed read "none").
        """
        from dubops.speech.loading import load_dubbing_model

        model, vocab, speech = load_dubbing_model(Path(run_dir))
        if lip_align is not None:
            speech = speech.model_copy(update={"lip_align": lip_align})
        return cls(model, vocab, speech, audio or AudioConfig())

    @property
    def needs_footage(self) -> bool:
        """True for a graph-stage model: every clip needs its retrieved footage."""
        return getattr(self.model, "emotion_module", None) is not None

    def phoneme_ids(self, script: str, voice: str = "en-us") -> torch.Tensor:
        """Corpus ids of the script; with a pause slot per word boundary when trained so."""
        from dubops.speech.pause_slots import slotted_phonemes
        from dubops.speech.text import phonemize

        if self.speech.duration.word_slots:
            names = slotted_phonemes(script, voice, audio=self.audio)
        else:
            names = phonemize(script, voice, audio=self.audio)
        return torch.tensor(self.vocab.encode(names))

    @torch.no_grad()
    def prepare(
        self,
        script: str,
        prompt_wav: np.ndarray,
        prompt_sample_rate: int,
        video_frames: np.ndarray | torch.Tensor | None = None,
        target_seconds: float | None = None,
        conclusion: Any = None,
        emotion_cond: torch.Tensor | None = None,
        footage: dict[str, torch.Tensor] | None = None,
        nfe: int | None = None,
        guidance: GuidanceScales | None = None,
        ablation: Ablation = Ablation(),
        seed: int = 0,
        voice: str = "en-us",
        fps: float = 25.0,
    ) -> SpeechPlan:
        """One clip's sampler input (see :meth:`generate` for the arguments)."""
        if video_frames is None and target_seconds is None:
            raise SpeechInputError("video", "give video_frames or target_seconds")
        if self.needs_footage and footage is None:
            raise SpeechInputError(
                "footage", "this model conditions on retrieved footage: pass footage"
            )
        # A target length overrides the video's: the video is stretched to it.
        seconds = len(video_frames) / fps if target_seconds is None else float(target_seconds)
        target = slot_frames(seconds, self.audio)
        ids = self.phoneme_ids(script, voice)
        pause_id = self.vocab.index.get(PAUSE, -1)
        check_slot(
            int((ids != pause_id).sum()), target, self.audio.hop_length, self.audio.sample_rate
        )
        prompt = prepare_prompt(prompt_wav, prompt_sample_rate, self.audio.sample_rate)
        prompt_mel = self.mel(prompt).T
        size = self.speech.controlnet.frame_size
        if video_frames is not None:
            frames = _frames_tensor(video_frames, size)[0]
        else:
            frames = torch.zeros(max(1, round(seconds * fps)), 3, size, size, dtype=torch.uint8)
            ablation = Ablation(False, ablation.conclusion, ablation.duration_predictor)
        if conclusion is None:
            labels = {name: torch.tensor([0]) for name in _FIELDS}
            ablation = Ablation(ablation.visual, False, ablation.duration_predictor)
        else:
            labels = conclusion_labels(conclusion)
        speech = self.speech.model_copy(deep=True)
        if nfe is not None:
            speech.sampler.nfe = nfe
        if guidance is not None:
            speech.controlnet.guidance = guidance
        item = {"phonemes": ids, "frames": frames, "labels": labels, "pause_id": pause_id}
        tracker = self.speech.lip_align.tracker
        narration = SCENE_TYPES[int(labels["scene_type"])] == "narration"
        # Tracks only where clip_durations uses them: a talker on screen (not a
        # narration), the video kept (so frames were given) and durations predicted.
        if tracker != "none" and not narration and ablation.visual and ablation.duration_predictor:
            item["mouth"] = mouth_tracks(np.asarray(video_frames), tracker)
        reference = None
        if self.model.pitch is not None:
            from dubops.speech.pitch_targets import prompt_logf0

            reference = prompt_logf0(prompt, self.audio.sample_rate)
        return plan_clip_mel(
            self.model,
            item,
            prompt_mel,
            target,
            speech,
            ablation,
            emotion_cond,
            seed,
            footage=footage if self.needs_footage else None,
            prompt_logf0=reference,
        )

    def sample(self, plans: list[SpeechPlan]) -> list[torch.Tensor]:
        """Target mels ``(frames, m)`` of several prepared clips (batched sampler calls);
        a clip longer than ``speech.pieces.max_seconds`` is sampled in pieces."""
        pieces = self.speech.pieces
        return sample_plans(
            self.model,
            plans,
            slot_frames(pieces.max_seconds, self.audio),
            pieces.batch,
            self.audio,
        )

    def vocode(self, mel: torch.Tensor) -> np.ndarray:
        """A target mel ``(frames, m)`` -> the waveform at the audio config's rate."""
        return self.vocoder.decode(mel.T)[0].cpu().numpy()

    def generate(self, script: str, prompt_wav: np.ndarray, prompt_sample_rate: int, **kwargs):
        """Speak ``script`` in the prompt's voice, exactly as long as the video slot.

        Args:
            video_frames: ``(f, h, w, 3)`` uint8 at ``fps``; the slot is ``f / fps`` s.
                At full resolution it also times the words to the talker's mouth
                (``speech.lip_align``; skipped for a narration conclusion).
            target_seconds: the slot; without a video the video branch is dropped,
                as in training's guidance dropout.
            conclusion: the reasoner's Conclusion (or a dict of its four fields);
                None drops the conclusion branch.
            emotion_cond: ``(1, k, emotion_dim)`` footage-graph emotion vectors.
            footage: a graph-stage model's retrieved footage for this clip
                (``FootageTensors.batch([clip_id])``); required by such a model.
            nfe / guidance: override the sampler's steps and the three scales.

        Raises:
            SpeechInputError / ScriptError: naming the bad field and the fix.
        """
        plan = self.prepare(script, prompt_wav, prompt_sample_rate, **kwargs)
        return self.vocode(self.sample([plan])[0])
