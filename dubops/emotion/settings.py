"""Emotion-extractor settings: pydantic only, so loading a config never imports torch.

Authentic-Dubber builds its Reference Footage Library from four emotion vectors
per clip (scene, face, text, audio). The paper takes them from large pretrained
captioners and classifiers (VideoLLaMA 2 + RoBERTa, COMET, Emotion2Vec); none of
those ship offline, so each extractor here is a small network trained on the
corpus's training split with an emotion objective (the text one on top of the
packaged MiniLM sentence encoder). Every vector is ``dim`` wide (the paper
projects all inputs to 256).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dubops.config.section import Section


class FitSettings(Section):
    """How one extractor's emotion head is trained (cross-entropy on the 7 emotions)."""

    epochs: int = Field(30, gt=0)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(32, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)


class SceneSettings(Section):
    """Whole frames: the wall colour, lighting and everyone on screen."""

    frames: int = Field(4, ge=1, description="frames sampled evenly across the clip")
    size: int = Field(64, ge=16, description="frames are downscaled to size x size")
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64])
    fit: FitSettings = Field(default_factory=FitSettings)


class FaceSettings(Section):
    """Face crops from a detector, then a small CNN on the crops.

    Measured on the tiny corpus's cartoon faces (3 frames of all 360 clips,
    1,587 faces): MediaPipe's short-range BlazeFace found 91.5 % of the faces
    with no false detections; OpenCV's best Haar cascade (frontalface_alt2 on
    4x upscaled frames) 67 %; the cat-face cascade 85 % but with many false boxes.
    """

    detector: Literal["mediapipe", "haar"] = "mediapipe"
    frames: int = Field(3, ge=1, description="frames searched for faces")
    max_faces: int = Field(3, ge=1, description="faces kept per frame (most confident first)")
    crop: int = Field(32, ge=8, description="crops are resized to crop x crop")
    margin: float = Field(1.25, ge=1.0, description="crop side / detected box side")
    oval: bool = Field(True, description="grey out the crop outside its inscribed ellipse")
    upscale: int = Field(1, ge=1, description="frame upscale before detection (Haar needs 4)")
    channels: list[int] = Field(default_factory=lambda: [16, 32, 64])
    fit: FitSettings = Field(default_factory=FitSettings)


class TextSettings(Section):
    """Text-self (script) and text-react (react line) on a frozen sentence encoder."""

    encoder_path: str | None = Field(
        None,
        description="local sentence-transformers folder; None = the packaged all-MiniLM-L6-v2",
    )
    hidden: int = Field(256, gt=0)
    fit: FitSettings = Field(default_factory=lambda: FitSettings(epochs=60, lr=1e-3))


class AudioSettings(Section):
    """A conv + GRU speech-emotion encoder on log-mels (not the EMO-ACC classifier)."""

    channels: int = Field(96, gt=0)
    gru: int = Field(96, gt=0)
    max_seconds: float = Field(6.0, gt=0, description="longer speech is cut (batch memory)")
    speaker_norm: bool = Field(
        True,
        description="also encode the timbre prompt (same speaker, calm) and use the difference",
    )
    # Measured on the tiny corpus (test_s1 / test_s2 accuracy): no speaker_norm 93 / 48 %,
    # speaker_norm 88 / 65 %, speaker_norm + prompt_centre 90 / 72 %.
    prompt_centre: bool = Field(
        True, description="centre both mels on the prompt's mean log-mel instead of the corpus's"
    )
    fit: FitSettings = Field(default_factory=lambda: FitSettings(epochs=25, lr=2e-3))


class ExtractorsConfig(Section):
    """The four emotion extractors (the ``emotion`` section of ``DubOpsConfig``)."""

    dim: int = Field(256, gt=0, description="every emotion vector's size (Authentic-Dubber: 256)")
    seed: int = 0
    torch_threads: int = Field(1, ge=1)
    max_minutes: float | None = Field(
        30.0,
        gt=0,
        description="safety limit of `dubops train extractors`: past it the stage fails "
        "(the budget is each modality's fit.epochs; None: no limit)",
    )
    # Cosine-classifier scale: the head compares unit embeddings with unit class
    # weights, so training shapes the very space cosine retrieval searches.
    logit_scale: float = Field(16.0, gt=0)
    batch_size: int = Field(32, gt=0, description="clips per batch when extracting vectors")
    scene: SceneSettings = Field(default_factory=SceneSettings)
    face: FaceSettings = Field(default_factory=FaceSettings)
    text: TextSettings = Field(default_factory=TextSettings)
    audio: AudioSettings = Field(default_factory=AudioSettings)

    @model_validator(mode="after")
    def _check_dim(self) -> ExtractorsConfig:
        if self.dim % 2:
            raise ValueError(
                f"emotion.dim ({self.dim}) must be even: the text vector is two equal halves "
                "(text-self and text-react); e.g. --set emotion.dim=256"
            )
        return self
