"""Building or loading the reasoner's vision-language model and its processor.

* ``tiny``: a LLaVA model (CLIP vision tower, two-layer projector, Llama
  decoder) from :class:`~dubops.reasoning.settings.ReasonerConfig` with random
  weights and the tokenizer of :mod:`dubops.reasoning.tokenizer`. The image
  processor is the PIL CLIP one, which needs no torchvision.
* ``pretrained``: any local image-text-to-text checkpoint transformers can
  load (InternVL, Qwen-VL, LLaVA), in bf16 when asked, with LoRA adapters from
  PEFT on the language model and gradient checkpointing when asked.

A trained reasoner is a folder written by ``save_pretrained`` (safetensors)
for both model and processor, plus ``reasoner.json`` (its config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dubops.errors import DubOpsError
from dubops.reasoning.settings import ReasonerConfig

CONFIG_FILE = "reasoner.json"


class ReasonerLoadError(DubOpsError, ValueError):
    """A reasoner folder or checkpoint path is missing or incomplete."""


def build_processor(config: ReasonerConfig, tokenizer: Any) -> Any:
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    size = config.image_size
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.vision.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by "default"
    )


def build_tiny(config: ReasonerConfig, tokenizer: Any) -> Any:
    """A random-weight LLaVA sized by ``config.vision`` / ``config.language``."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    v, lm = config.vision, config.language
    vision = CLIPVisionConfig(
        hidden_size=v.hidden_size,
        intermediate_size=v.intermediate_size,
        num_hidden_layers=v.layers,
        num_attention_heads=v.heads,
        image_size=config.image_size,
        patch_size=v.patch_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=lm.hidden_size,
        intermediate_size=lm.intermediate_size,
        num_hidden_layers=lm.layers,
        num_attention_heads=lm.heads,
        num_key_value_heads=lm.heads,
        max_position_embeddings=lm.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    llava = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(tokenizer.image_token),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    model = LlavaForConditionalGeneration(llava)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def vision_tower(model: Any) -> Any:
    """The vision encoder of a LLaVA-style model (wrapped or not by PEFT)."""
    for owner in (model, getattr(model, "model", None), getattr(model, "base_model", None)):
        while owner is not None:
            tower = getattr(owner, "vision_tower", None)
            if tower is not None:
                return tower
            owner = getattr(owner, "model", None)
    raise ReasonerLoadError("the model has no vision_tower; it is not a LLaVA-style VLM")


def load_pretrained(config: ReasonerConfig) -> tuple[Any, Any]:
    """(model with LoRA adapters, processor) from ``config.pretrained_path``."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = config.pretrained_path
    if path is None or not Path(path).is_dir():
        raise ReasonerLoadError(
            f"reasoning.pretrained_path {path} is not a folder; give a local checkpoint folder"
        )
    dtype = torch.bfloat16 if config.bf16 else torch.float32
    processor = AutoProcessor.from_pretrained(path, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, local_files_only=True)
    return add_lora(model, config), processor


def add_lora(model: Any, config: ReasonerConfig) -> Any:
    """Wrap ``model`` in fresh LoRA adapters on its language model's projections."""
    from peft import LoraConfig, get_peft_model

    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    lora = config.lora
    # Only the language model's projections: CLIP-style towers name theirs alike.
    targets = rf".*language_model.*\.({'|'.join(lora.target_modules)})"
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=targets,
            task_type="CAUSAL_LM",
        ),
    )
    return model


def save_reasoner(model: Any, processor: Any, config: ReasonerConfig, out_dir: Path) -> None:
    """Model (LoRA merged), processor and config into ``out_dir`` (safetensors, no pickle).

    Merging LoRA unloads the adapters from ``model`` itself: save a PEFT model only
    when its training is over.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    data = config.model_dump(mode="json")
    tmp = out_dir / f".{CONFIG_FILE}.tmp"
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(out_dir / CONFIG_FILE)


def load_reasoner(model_dir: str | Path) -> tuple[Any, Any, ReasonerConfig]:
    """(model, processor, config) of a folder written by :func:`save_reasoner`."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = Path(model_dir)
    if not (folder / CONFIG_FILE).is_file():
        raise ReasonerLoadError(
            f"{folder} is not a trained reasoner (no {CONFIG_FILE}); "
            "train one with `dubops train reasoner-sft`"
        )
    config = ReasonerConfig.model_validate_json((folder / CONFIG_FILE).read_text())
    processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(folder, local_files_only=True)
    model.eval()
    return model, processor, config
