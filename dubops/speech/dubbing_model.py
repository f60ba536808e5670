"""Stage 2.2's trainable whole: frozen pretrained DiT + ControlNet + conditions + durations.

Training draws the DeepDubber guidance dropout: video, conclusion and script are
each dropped with ``condition_drop_prob`` (5 %; the conclusion at its own rate where a
stage sets ``conclusion_drop_prob``); dropping the script also drops
the prompt audio, as F5's unconditional branch does, and the prompt audio alone
is still dropped with F5's 30 %. The loss is flow matching on the hidden span
plus ``duration_loss_weight`` x the duration predictor's loss. ``context``
(:mod:`dubops.speech.context`) decides what the hidden span is: F5's infilling
of the clip itself (``self``), or the whole clip after its timbre prompt, as
inference sees it (``prompt``; the video then covers the clip's frames only).

An optional ``emotion_module`` (Authentic-Dubber's graph synthesizer,
:class:`dubops.emotion.conditioner.EmotionConditioner`) turns a batch's
``footage`` tensors and the mel-rate visual sequence into the fusion's emotion
sequence inside the forward pass; without it (or without footage) nothing
changes, weights and outputs included.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import nn

from dubops.speech.cfm import FlowMatching
from dubops.speech.conditioning import (
    ClipFrameEncoder,
    ConclusionEmbedding,
    ConditionFusion,
    FrameEncoder,
    to_mel_rate,
)
from dubops.speech.context import build_context, prompt_draws, shift_frames
from dubops.speech.controlnet import ControlNet
from dubops.speech.duration import DurationPredictor, duration_loss
from dubops.speech.pitch import PitchHead, frame_phonemes, loudness, pitch_loss
from dubops.speech.settings import SpeechConfig


class DubbingModel(nn.Module):
    """Everything stage 2.2 trains, around the frozen stage-2.1 flow model."""

    def __init__(
        self,
        flow: FlowMatching,
        config: SpeechConfig,
        vocab_size: int,
        emotion_module: nn.Module | None = None,
        context: str = "self",
    ) -> None:
        super().__init__()
        cn = config.controlnet
        self.config = config
        # Training only (not saved): the stage's ``TrainConfig.context``.
        self.context = context
        # Training only (not saved): the conclusion's own dropout rate, where a stage sets
        # one (the graph stage's ``graph.conclusion_drop_prob``); None is condition_drop_prob.
        self.conclusion_drop_prob: float | None = None
        # Training only (not saved): children held fixed (the graph stage's ``graph.frozen``);
        # they stay in eval mode like the DiT.
        self.frozen_parts: tuple[str, ...] = ()
        self.flow = flow
        self.flow.requires_grad_(False)
        dim = flow.backbone.config.dim
        self.controlnet = ControlNet(flow.backbone, cn.blocks)
        if cn.visual_encoder == "clip":
            if not cn.clip_path:
                raise ValueError("speech.controlnet.clip_path is required for visual_encoder clip")
            self.visual = ClipFrameEncoder(cn.clip_path, cn.visual_dim)
        else:
            self.visual = FrameEncoder(cn.visual_dim)
        self.conclusion = ConclusionEmbedding(cn.visual_dim, cn.conclusion_fields)
        self.fusion = ConditionFusion(cn.visual_dim, cn.emotion_dim, dim, cn.fusion_heads)
        self.duration = DurationPredictor.from_config(
            config.duration, vocab_size, cond_dim=cn.visual_dim, visual_dim=cn.visual_dim
        )
        # Registered only when enabled, so older models' state dicts are unchanged.
        self.pitch = PitchHead(config.pitch, vocab_size, dim) if config.pitch.enabled else None
        # Registered only when given, so a graph-free model's state dict is unchanged.
        self.emotion_module = emotion_module

    def train(self, mode: bool = True) -> DubbingModel:
        super().train(mode)
        self.flow.eval()  # the pretrained DiT stays frozen, dropout included
        for name in self.frozen_parts:
            getattr(self, name).eval()
        return self

    def freeze(self, parts: list[str]) -> None:
        """Hold the named children at their weights (the graph stage's ``graph.frozen``).

        Why: so the graph and the fusion can learn to stand in for the conclusion on a
        fixed generator, and a stage can test whether the ControlNet's own drift makes
        trainings differ (on the tiny corpus it did not; docs/results/emotion.md).
        Frozen parts leave the EMA, which averages only what trains, and stay in eval
        mode (no dropout noise); an absent part (no pitch head) is skipped. A frozen
        pitch head is still refined after the stage when ``speech.pitch.refine_steps``
        asks for it.
        """
        held = [name for name in parts if getattr(self, name) is not None]
        for name in held:
            getattr(self, name).requires_grad_(False)
        self.frozen_parts = tuple(held)

    def condition(
        self,
        frames: torch.Tensor,
        frame_lengths: torch.Tensor,
        labels: dict[str, torch.Tensor],
        mel_lengths: torch.Tensor,
        n: int,
        keep_visual: torch.Tensor,
        keep_conclusion: torch.Tensor,
        emotion: torch.Tensor | None = None,
        footage: dict[str, torch.Tensor] | None = None,
        offsets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (fused condition (b, n, d), video-rate features (b, f, dv), conclusion tokens).

        ``emotion (b, k, de)`` is given directly, or computed from ``footage`` by
        the emotion module (never both). ``offsets (b,)``: each clip starts that
        many frames into the sequence (after its prompt); the video covers the
        clip's frames and every other frame reads the "no video" embedding, as at
        inference.
        """
        video = self.visual(frames)
        if offsets is None:
            visual = to_mel_rate(video, frame_lengths, mel_lengths, n)
        else:
            clip = to_mel_rate(video, frame_lengths, mel_lengths, int(mel_lengths.max()))
            visual = shift_frames(clip, offsets, n)
            pos = torch.arange(n, device=visual.device)[None, :]
            on_clip = (pos >= offsets[:, None]) & (pos < (offsets + mel_lengths)[:, None])
            keep_visual = keep_visual[:, None] & on_clip
        tokens = self.conclusion(labels, keep_conclusion)
        if footage is not None:
            if emotion is not None:
                raise ValueError("give emotion or footage, not both")
            emotion = self.graph_emotion(visual, keep_visual, footage)
        return self.fusion(visual, keep_visual, tokens, emotion), video, tokens

    def graph_emotion(
        self, visual: torch.Tensor, keep_visual: torch.Tensor, footage: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """The emotion module on the mel-rate visual ``(b, n, dv)`` -> ``(b, n, de)``.

        Dropped video (per sample ``(b,)`` or per frame ``(b, n)``) reads as zeros,
        so a guidance branch without video gets no visual through the graph either.
        """
        if self.emotion_module is None:
            raise ValueError("footage given, but this model has no emotion graph (emotion_module)")
        keep = keep_visual[:, None, None] if keep_visual.dim() == 1 else keep_visual[..., None]
        return self.emotion_module(torch.where(keep, visual, torch.zeros_like(visual)), footage)

    def condition_visual(
        self, video: torch.Tensor, frame_lengths: torch.Tensor, n: int
    ) -> torch.Tensor:
        """Video-rate features ``(b, f, dv)`` stretched over ``n`` mel frames."""
        lengths = torch.full_like(frame_lengths, n)
        return to_mel_rate(video, frame_lengths, lengths, n)

    def predict_log_durations(
        self,
        phonemes: torch.Tensor,
        phoneme_mask: torch.Tensor,
        video: torch.Tensor,
        frame_lengths: torch.Tensor,
        tokens: torch.Tensor,
        keep_visual: torch.Tensor,
    ) -> torch.Tensor:
        """log(1 + frames) per phoneme; a dropped video reads as zeros (never all-masked)."""
        positions = torch.arange(video.shape[1], device=video.device)[None]
        frame_mask = positions < frame_lengths[:, None]
        video = torch.where(keep_visual[:, None, None], video, torch.zeros_like(video))
        return self.duration(
            phonemes, phoneme_mask, cond=tokens.mean(dim=1), visual=video, visual_mask=frame_mask
        )

    def training_loss(self, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        cn = self.config.controlnet
        mel, lengths = batch["mel"], batch["mel_lengths"]
        b, n, _ = mel.shape
        p = cn.condition_drop_prob
        p_conclusion = p if self.conclusion_drop_prob is None else self.conclusion_drop_prob
        u = torch.rand(2 * b + 2).tolist()  # CPU draws: decisions, not tensors on the device
        keep_visual = torch.tensor([x >= p for x in u[:b]], device=mel.device)
        keep_conclusion = torch.tensor([x >= p_conclusion for x in u[b : 2 * b]], device=mel.device)
        drop_text = u[-2] < p
        drop_audio = drop_text or u[-1] < self.flow.config.audio_drop_prob
        context = None
        if self.context != "self":
            flow = self.flow.config
            notext = -1 if self.flow.notext_id is None else self.flow.notext_id
            context = build_context(
                batch, prompt_draws(self.context, b), notext, (flow.mask_min, flow.mask_max)
            )
        condition, video, tokens = self.condition(
            batch["frames"],
            batch["frame_lengths"],
            batch["labels"],
            lengths,
            n if context is None else context.frames,
            keep_visual,
            keep_conclusion,
            batch.get("emotion"),
            batch.get("footage"),
            offsets=None if context is None else context.offsets,
        )
        sequence = (mel, batch["text"], lengths, None)
        if context is not None:
            sequence = (context.mel, context.text, context.lengths, context.hidden)
        flow_loss, _ = self.flow.infill_loss(
            *sequence[:3],
            control=self.controlnet.control(condition),
            drops=(drop_audio, drop_text),
            hidden=sequence[3],
        )
        log_dur = self.predict_log_durations(
            batch["phonemes"],
            batch["phoneme_mask"],
            video,
            batch["frame_lengths"],
            tokens,
            keep_visual,
        )
        dur_loss = duration_loss(log_dur, batch["durations"], batch["phoneme_mask"]).loss
        total = flow_loss + cn.duration_loss_weight * dur_loss
        terms = {"flow_loss": float(flow_loss.detach()), "duration_loss": float(dur_loss.detach())}
        if self.pitch is not None and "f0" in batch:
            offsets = torch.zeros_like(lengths) if context is None else context.offsets
            loss = self.pitch_training_loss(condition, offsets, batch)
            total = total + self.config.pitch.loss_weight * loss
            terms["pitch_loss"] = float(loss.detach())
        return total, terms

    def pitch_training_loss(
        self, condition: torch.Tensor, offsets: torch.Tensor, batch: dict
    ) -> torch.Tensor:
        """The pitch head on each clip's own frames of the condition (after its prompt)."""
        lengths, n = batch["mel_lengths"], batch["mel"].shape[1]
        clip = torch.stack(
            [
                nnf.pad(c[o : o + n], (0, 0, 0, n - len(c[o : o + n])))
                for c, o in zip(condition, offsets.tolist(), strict=True)
            ]
        )
        phonemes = frame_phonemes(batch["phonemes"], batch["durations"], n)
        mask = torch.arange(n, device=clip.device)[None, :] < lengths[:, None]
        return pitch_loss(
            self.pitch(clip, phonemes),
            batch["f0"],
            batch["prompt_logf0"],
            loudness(batch["mel"]),
            batch["prompt_level"],
            mask,
        )
