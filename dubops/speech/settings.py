"""Speech-generator settings: pydantic only, so loading a config never imports torch.

One section per concern (backbone, objective, sampler, ControlNet, duration),
composed into :class:`SpeechConfig`, the ``speech`` section of ``DubOpsConfig``.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from dubops.config.section import Section
from dubops.speech.train_config import TrainConfig

# The reasoner's four conclusion fields (dubops.speech.conditioning.CONCLUSION_FIELDS).
ConclusionField = Literal["scene_type", "gender", "age", "emotion"]


class DiTConfig(Section):
    """Backbone size. Defaults are F5TTS_v1_Base (its ``text_num_embeds`` is 2545)."""

    dim: int = Field(1024, gt=0)
    depth: int = Field(22, gt=0)
    heads: int = Field(16, gt=0)
    dim_head: int = Field(64, gt=0)
    ff_mult: float = Field(2, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)
    mel_dim: int = Field(100, gt=0)
    text_num_embeds: int = Field(2545, gt=0, description="vocabulary size, without the filler")
    text_dim: int = Field(512, gt=0)
    conv_layers: int = Field(4, ge=0, description="ConvNeXt V2 blocks refining the text")
    text_max_positions: int = Field(8192, gt=0, description="~87 s of 24 kHz mel frames")
    mask_padding_keys: bool = Field(
        False, description="exclude padded frames from attention (F5 attends to them)"
    )


class FlowMatchingConfig(Section):
    """The training objective's masking and guidance dropout (F5-TTS defaults)."""

    mask_min: float = Field(0.7, gt=0, le=1, description="smallest hidden fraction of a mel")
    mask_max: float = Field(1.0, gt=0, le=1)
    audio_drop_prob: float = Field(0.3, ge=0, le=1)
    cond_drop_prob: float = Field(0.2, ge=0, le=1, description="prompt and text dropped")


class SamplerConfig(Section):
    """ODE solve at inference: F5's defaults are 32 steps, sway -1, CFG 2."""

    nfe: int = Field(32, ge=1, description="ODE steps (network evaluations per branch)")
    method: Literal["euler", "midpoint"] = "euler"
    sway_coef: float | None = Field(-1.0, description="None disables sway sampling")
    cfg_strength: float = Field(2.0, ge=0)
    use_epss: bool = Field(True, description="pruned grids for NFE 5/6/7/10/12/16")
    compile: bool = Field(
        False,
        description="torch.compile the per-step network with its weights frozen "
        "(inductor, dynamic shapes; ~1.7x on a CPU): tens of seconds on the first call, "
        "for long-lived servers; falls back to eager once the weights change",
    )


class GuidanceScales(Section):
    """Multi-condition CFG scales (DeepDubber 2.2): video, conclusion, script."""

    visual: float = Field(1.5, ge=0)
    conclusion: float = Field(1.0, ge=0)
    script: float = Field(2.0, ge=0)


class ControlNetConfig(Section):
    """Trainable copies of the first ``blocks`` DiT blocks and their conditions."""

    blocks: int = Field(12, gt=0, description="12 for base, fewer for tiny")
    visual_dim: int = Field(512, gt=0, description="frame feature width (CLIP: 768)")
    visual_encoder: Literal["frames", "clip"] = Field(
        "frames", description="frames: small CNN trained here; clip: local CLIP path"
    )
    clip_path: str | None = None
    frame_size: int = Field(48, ge=16, description="frames are resized to this square")
    emotion_dim: int = Field(256, gt=0, description="footage-graph emotion sequence width")
    fusion_heads: int = Field(4, gt=0)
    condition_drop_prob: float = Field(0.05, ge=0, le=1, description="each of video/concl./script")
    conclusion_fields: list[ConclusionField] = Field(
        default_factory=lambda: list(get_args(ConclusionField)),
        description="the conclusion fields served (training reads all four); the others "
        "are served as the null token guidance dropout trains: gender and age, which the "
        "reasoner gets wrong more often than the prompt's voice does, can be left out",
    )
    duration_loss_weight: float = Field(0.1, ge=0)
    guidance: GuidanceScales = GuidanceScales()


class DurationConfig(Section):
    """Phoneme duration predictor (frames per phoneme)."""

    dim: int = Field(256, gt=0)
    layers: int = Field(4, gt=0)
    word_slots: bool = Field(
        False,
        description="a pause slot at every word boundary (dubops.speech.pause_slots): "
        "the predictor decides each gap, so speech can pause where the lips do",
    )


class DurationRefineConfig(Section):
    """The duration predictor trained on alone after stage 2.2 (dubops.speech.duration_refine)."""

    steps: int = Field(
        0, ge=0, description="updates of the predictor alone, frozen encoders; 0 skips"
    )
    lr: float = Field(3e-4, gt=0)
    batch: int = Field(16, gt=0, description="clips per update")
    eval_every: int = Field(250, gt=0, description="validation onset error cadence")


class LipAlignConfig(Section):
    """Inference: move the predicted words onto the talker's mouth (dubops.speech.lip_align).

    The costs are in z-scored mouth-opening units, chosen on the val split of the
    tiny corpus (onset error 1.06 -> 0.64 video frames with the medium run in
    docs/results/speech.md).
    """

    tracker: Literal["none", "cartoon", "face-mesh"] = Field(
        "none",
        description="mouth tracker on the full-resolution video: cartoon (the synthetic "
        "corpus's drawn mouths), face-mesh (MediaPipe landmarks, filmed faces), none: off",
    )
    ratios: list[float] = Field(
        [0.8, 0.9, 1.0, 1.1, 1.25], min_length=1, description="stretches a word may take"
    )
    ratio_cost: float = Field(3.0, ge=0, description="per word not at its predicted length")
    shift_cost: float = Field(0.05, ge=0, description="per mel frame a word's start moves")

    @field_validator("ratios")
    @classmethod
    def _keeps_prediction(cls, ratios: list[float]) -> list[float]:
        if any(r <= 0 for r in ratios) or 1.0 not in ratios:
            raise ValueError(
                f"speech.lip_align.ratios {ratios}: give positive ratios that include 1.0 "
                "(the predicted length must stay a candidate)"
            )
        return ratios


class PieceConfig(Section):
    """Inference: long clips sampled in pieces (dubops.speech.pieces)."""

    max_seconds: float = Field(
        8.0,
        ge=1.0,
        description="longest piece; a longer clip is cut at word boundaries into pieces of "
        "about equal length (cost per second is flat from ~3 to ~10 s, quadratic beyond)",
    )
    batch: int = Field(
        4, ge=1, description="pieces (and clips) per sampler call: the bound on its memory"
    )


class PitchConfig(Section):
    """The pitch head on the conditions and the harmonic comb it drives (dubops.speech.pitch).

    Off by default: a DiT at F5's size renders harmonics itself. The tiny
    preset's does not (its mels are smooth across frequency, pitchless speech),
    so there the head's contour is laid over the sampled mel.
    """

    enabled: bool = Field(
        False, description="train the head with the ControlNet; comb at inference"
    )
    dim: int = Field(128, gt=0)
    layers: int = Field(3, gt=0)
    kernel: int = Field(5, gt=0, description="odd convolution width, in mel frames")
    loss_weight: float = Field(1.0, ge=0, description="pitch loss beside the flow loss")
    strength: float = Field(
        1.0, ge=0, description="scale of the comb's log ratio at inference (0: no comb)"
    )
    loudness_strength: float = Field(
        1.0, ge=0, le=1, description="how far speech frames move to the predicted loudness"
    )
    voicing_threshold: float = Field(0.5, gt=0, lt=1)
    refine_steps: int = Field(
        0,
        ge=0,
        description="updates of the head alone on frozen conditions after the stage "
        "(dubops.speech.pitch_refine); 0 skips",
    )
    refine_lr: float = Field(1e-3, gt=0)
    refine_eval_every: int = Field(100, gt=0, description="validation cadence of the refinement")
    smooth_frames: int = Field(
        9,
        ge=1,
        description="log-F0 averaged over this many mel frames (a jittery comb is "
        "rendered unvoiced)",
    )
    contour_scale: float = Field(
        1.0,
        gt=0,
        description="the voiced log-F0's movement around its mean is multiplied by this "
        "(a squared-error head predicts flattened contours; docs/results/emotion.md); "
        "1 keeps the head's",
    )
    fit_contour_scale: bool = Field(
        True,
        description="after the pitch refinement, the run folder serves contour_scale = the "
        "val targets' log-F0 spread over the head's (global variance); false keeps the "
        "configured contour_scale",
    )
    envelope_bins: float = Field(
        1.5,
        ge=0,
        description="before the comb, voiced frames are smoothed across frequency by a "
        "Gaussian of this many mel bins (its SD), so harmonics the DiT drew at another "
        "pitch do not fight the comb's (docs/results/emotion.md); 0 keeps the mel",
    )

    @field_validator("kernel")
    @classmethod
    def _odd(cls, kernel: int) -> int:
        if kernel % 2 == 0:
            raise ValueError(f"speech.pitch.kernel {kernel}: use an odd width (3, 5, 7)")
        return kernel


class SpeechConfig(Section):
    """The ``speech`` section: text mode, network sizes, objective, sampler, stages."""

    text_mode: Literal["aligned", "unaligned"] = Field(
        "unaligned", description="aligned: phoneme ids repeated per frame (tiny)"
    )
    dit: DiTConfig = DiTConfig()
    flow: FlowMatchingConfig = FlowMatchingConfig()
    sampler: SamplerConfig = SamplerConfig()
    controlnet: ControlNetConfig = ControlNetConfig()
    duration: DurationConfig = DurationConfig()
    duration_refine: DurationRefineConfig = DurationRefineConfig()
    lip_align: LipAlignConfig = LipAlignConfig()
    pieces: PieceConfig = PieceConfig()
    pitch: PitchConfig = PitchConfig()
    pretrain: TrainConfig = TrainConfig()
    controlnet_training: TrainConfig = TrainConfig(lr=1e-4, warmup_steps=500)
    vocoder: Literal["griffin-lim", "vocos"] = "griffin-lim"
    vocoder_path: str | None = None
    pretrained_dit: str | None = Field(
        None,
        description="local DiT checkpoint to start stage 2.1 from: an F5-TTS release, or one "
        "of ours (its vocab.json beside it keeps the phoneme ids)",
    )
    pretrained_controlnet: str | None = Field(
        None,
        description="dubbing.safetensors to start stage 2.2 from (the shipped base or the "
        "champion's), with the same controlnet / duration shapes",
    )
