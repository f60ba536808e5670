"""The reasoner's configuration: pydantic only, so reading a preset never imports torch.

``tiny`` builds a LLaVA-style model from :class:`VisionTowerConfig` and
:class:`LanguageModelConfig` with random weights; ``pretrained`` loads a local
InternVL / Qwen-VL / LLaVA checkpoint folder and trains LoRA adapters on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dubops.config.section import CheckedSection


class VisionTowerConfig(CheckedSection):
    """A CLIP vision transformer (tiny preset; random init)."""

    hidden_size: int = Field(192, gt=0)
    layers: int = Field(3, gt=0)
    heads: int = Field(3, gt=0)
    intermediate_size: int = Field(768, gt=0)
    patch_size: int = Field(16, gt=0)


class LanguageModelConfig(CheckedSection):
    """A Llama decoder (tiny preset; random init) over the tokenizer built here."""

    hidden_size: int = Field(256, gt=0)
    layers: int = Field(4, gt=0)
    heads: int = Field(4, gt=0)
    intermediate_size: int = Field(1024, gt=0)
    max_positions: int = Field(1024, gt=0)
    vocab_size: int = Field(1024, ge=300, description="BPE vocabulary trained on the corpus text")


class LoraSettings(CheckedSection):
    """PEFT LoRA on a pretrained checkpoint (base preset)."""

    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        description="language-model projections that get adapters",
    )


class ReasonerTrainConfig(CheckedSection):
    """One TRL stage: optimisation, cadence and stopping."""

    lr: float = Field(5e-4, gt=0)
    epochs: float = Field(10, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accumulation_steps: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    max_minutes: float | None = Field(
        None,
        gt=0,
        description="safety limit: a stage still short of its epochs after this wall time "
        "saves a checkpoint and fails (the budget is epochs, not minutes)",
    )
    torch_threads: int | None = Field(None, ge=1)
    eval_clips: int = Field(64, ge=0, description="validation clips generated after each epoch")
    train_clips: int | None = Field(
        None, gt=0, description="use only the first N training clips (smoke and overfit checks)"
    )
    seed: int = 0


class VisionWarmupConfig(CheckedSection):
    """LLaVA's stage-1 idea for a random tower: learn the clip labels before any text."""

    epochs: int = Field(30, ge=0, description="0 skips the warm-up (pretrained towers)")
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(16, gt=0)
    freeze_after: bool = Field(True, description="freeze the tower for SFT (LLaVA stage 2)")


class MPOSettings(ReasonerTrainConfig):
    """Mixed preference optimisation: TRL DPO with three losses plus the F&O terms.

    DeepDubber's weights did not survive the text extraction; the defaults are
    the MPO paper's (InternVL2-MPO: preference 0.8, quality 0.2, generation 1).
    """

    lr: float = Field(5e-5, gt=0)
    epochs: float = Field(2, gt=0)
    beta: float = Field(0.1, gt=0)
    preference_weight: float = Field(0.8, ge=0, description="DPO sigmoid loss")
    quality_weight: float = Field(0.2, ge=0, description="BCO pair loss")
    generation_weight: float = Field(1.0, ge=0, description="SFT loss on the chosen answer")
    format_weight: float = Field(0.1, ge=0, description="format reward term (eq. 12)")
    accuracy_weight: float = Field(0.1, ge=0, description="accuracy reward term (eq. 13)")
    own_samples: int = Field(2, ge=0, description="SFT-model samples drawn per training clip")
    sample_temperature: float = Field(1.0, gt=0)
    rejected_per_clip: int = Field(2, ge=1, le=4, description="corpus rejected variants used")
    guard_margin: float = Field(
        0.0,
        description="keep the MPO weights only if every guarded validation score reaches "
        "the SFT model's + this; otherwise the SFT weights are kept",
    )
    # "MPO must not lower format validity or accuracy": every accuracy is guarded.
    guard_metrics: tuple[str, ...] = (
        "format_validity",
        "scene_type_accuracy",
        "gender_accuracy",
        "age_accuracy",
        "emotion_accuracy",
    )


class ReasonerConfig(CheckedSection):
    """The whole reasoner: model, inputs, training stages and decoding."""

    model: Literal["tiny", "pretrained"] = "tiny"
    pretrained_path: Path | None = Field(None, description="local VLM checkpoint folder")
    vision: VisionTowerConfig = Field(default_factory=VisionTowerConfig)
    language: LanguageModelConfig = Field(default_factory=LanguageModelConfig)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    image_size: int = Field(96, ge=32, description="square side the images are resized to")
    keyframes: int = Field(1, ge=1, description="frames shown, evenly spaced over the clip")
    motion: bool = Field(True, description="add the motion image (mean frame-to-frame change)")
    motion_gain: float = Field(12.0, gt=0, description="mean change (0-255) x gain, clipped")
    max_new_tokens: int = Field(256, gt=0)
    bf16: bool = Field(False, description="bf16 weights (GPU presets)")
    gradient_checkpointing: bool = False
    warmup: VisionWarmupConfig = Field(default_factory=VisionWarmupConfig)
    sft: ReasonerTrainConfig = Field(default_factory=ReasonerTrainConfig)
    mpo: MPOSettings = Field(default_factory=MPOSettings)

    @model_validator(mode="after")
    def _check(self) -> ReasonerConfig:
        if self.model == "pretrained" and self.pretrained_path is None:
            raise ValueError(
                "reasoning.pretrained_path is required for reasoning.model=pretrained; "
                "set it with --set reasoning.pretrained_path=/path/to/checkpoint"
            )
        if self.image_size % self.vision.patch_size:
            raise ValueError(
                f"reasoning.image_size ({self.image_size}) must be a multiple of "
                f"reasoning.vision.patch_size ({self.vision.patch_size})"
            )
        return self
