"""Stage 1.2: mixed preference optimisation (MPO) with TRL's ``DPOTrainer``.

The loss is TRL's ``loss_type=["sigmoid", "bco_pair", "sft"]`` with
``loss_weights`` (preference = DPO, quality = BCO, generation = SFT; the MPO
paper's 0.8 / 0.2 / 1 unless configured) plus DeepDubber's format and
accuracy terms, eqs. (12)-(13), whose symbols did not survive the text
extraction. We read them as binary cross-entropies between

* the label ``y``: is the response's format correct (it parses), and is its
  answer correct (its conclusion equals the clip's), and
* the probability the model gives the response being good: the DPO/BCO
  implicit reward squashed, ``p = sigmoid(beta * log(pi / pi_ref))``,

applied to both sides of every pair: ``-[y log p + (1 - y) log(1 - p)]``,
averaged, weighted by ``format_weight`` / ``accuracy_weight``. They push the
implicit reward of malformed or wrong answers down and of correct ones up,
whichever side of a pair they are on (an SFT sample can be wrong yet
well-formed). BCO's reward shift ``delta`` is 0, as in TRL's ``bco_pair``.

Preference pairs: the accepted chain of thought against the corpus's rejected
variants (wrong count, wrong scene, wrong attribute, broken format) and
against the SFT model's own sampled answers that are wrong or malformed. The
reference model is a frozen copy of the SFT model (nothing downloads).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dubops.config.models import DubOpsConfig
from dubops.fileio import write_json
from dubops.reasoning.parser import Conclusion, ReasoningParseError, parse_answer
from dubops.reasoning.settings import MPOSettings
from dubops.reasoning.training_data import ClipSet, corpus_rejected, load_clips
from dubops.safety_limit import SafetyLimit

logger = logging.getLogger(__name__)

LABEL_KEYS = ("format_ok", "answer_ok")


def answer_labels(text: str, truth: Conclusion) -> tuple[float, float]:
    """(format correct, answer correct) of one answer, each 0 or 1."""
    try:
        conclusion = parse_answer(text)
    except ReasoningParseError:
        return 0.0, 0.0
    return 1.0, float(conclusion == truth)


def truth_of(row: Any) -> Conclusion:
    return Conclusion(row.scene_type, row.gender, row.age, row.emotion)


def preference_rows(
    clips: ClipSet,
    prompt_of: Any,
    eos: str,
    settings: MPOSettings,
    own_answers: list[list[str]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Pairs (chosen = accepted CoT) with their reward labels, and counts per source."""
    rng = np.random.default_rng(settings.seed)
    rows, counts = [], {"corpus": 0, "own_wrong": 0, "own_malformed": 0, "own_correct_skipped": 0}
    for i, (row, images) in enumerate(zip(clips.rows.itertuples(), clips.images, strict=True)):
        truth = truth_of(row)
        variants = corpus_rejected(row)
        picked = rng.choice(len(variants), size=settings.rejected_per_clip, replace=False)
        rejected = [variants[j]["text"] for j in sorted(picked)]
        counts["corpus"] += len(rejected)
        for text in (own_answers or [[]] * len(clips))[i]:
            fmt, ok = answer_labels(text, truth)
            if ok:
                counts["own_correct_skipped"] += 1
                continue
            counts["own_wrong" if fmt else "own_malformed"] += 1
            rejected.append(text)
        for text in rejected:
            fmt, ok = answer_labels(text, truth)
            rows.append(
                {
                    "prompt": prompt_of(row.script),
                    "chosen": row.cot + eos,
                    "rejected": text + eos,
                    "images": images,
                    "format_ok": [1.0, fmt],
                    "answer_ok": [1.0, ok],
                }
            )
    return rows, counts


class RewardLabelCollator:
    """TRL's preference collator, plus the reward labels as ``(2b,)`` tensors.

    TRL stacks chosen then rejected (``[chosen_1..b, rejected_1..b]``); the
    labels follow the same order.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        labels = {k: [ex.pop(k) for ex in examples] for k in LABEL_KEYS}
        batch = self.inner(examples)
        for key, pairs in labels.items():
            batch[key] = torch.tensor([p[0] for p in pairs] + [p[1] for p in pairs])
        return batch


def sequence_logps(log_probs: Any, completion_mask: Any) -> Any:
    """Per-sequence completion log-likelihood, as TRL sums it (masked tokens are 0)."""
    seq_len = completion_mask.shape[1] - 1
    return log_probs[:, -seq_len:].sum(dim=1)


def reward_terms(
    policy_logps: Any, ref_logps: Any, format_ok: Any, answer_ok: Any, beta: float
) -> tuple[Any, Any]:
    """(format loss, accuracy loss): BCE of ``sigmoid(beta * logratio)`` against the labels."""
    from torch.nn.functional import binary_cross_entropy_with_logits as bce

    logits = beta * (policy_logps - ref_logps)
    fmt = bce(logits, format_ok.to(logits.dtype))
    acc = bce(logits, answer_ok.to(logits.dtype))
    return fmt, acc


@contextlib.contextmanager
def _capture_outputs(modules: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Record each module's last forward output while the block runs."""
    seen: dict[str, Any] = {}
    handles = []
    for name, module in modules.items():
        if module is not None:
            handles.append(
                module.register_forward_hook(lambda _m, _i, out, n=name: seen.__setitem__(n, out))
            )
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def mpo_trainer_class() -> type:
    """``DPOTrainer`` with the F&O terms added (built lazily: TRL is a heavy import)."""
    from trl import DPOTrainer

    class MPOTrainer(DPOTrainer):
        """TRL's mixed DPO loss + format and accuracy terms; the sum is what trains."""

        def __init__(self, *args: Any, format_weight: float, accuracy_weight: float, **kw: Any):
            super().__init__(*args, **kw)
            self.format_weight = format_weight
            self.accuracy_weight = accuracy_weight
            self.last_terms: dict[str, float] = {}

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = {k: inputs.pop(k) for k in LABEL_KEYS}
            with _capture_outputs({"policy": model, "ref": self.ref_model}) as seen:
                loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mixed = loss[0] if return_outputs else loss
            mask = inputs["completion_mask"]
            policy = sequence_logps(seen["policy"].log_probs, mask)
            ref = sequence_logps(seen["ref"].log_probs, mask).detach()
            fmt, acc = reward_terms(
                policy, ref, labels["format_ok"], labels["answer_ok"], self.beta
            )
            total = mixed + self.format_weight * fmt + self.accuracy_weight * acc
            self.last_terms = {
                "mixed_loss": float(mixed.detach()),
                "format_loss": float(fmt.detach()),
                "accuracy_loss": float(acc.detach()),
            }
            mode = "train" if self.model.training else "eval"
            for key, value in self.last_terms.items():
                self._metrics[mode][key].append(value)
            return (total, loss[1]) if return_outputs else total

    return MPOTrainer


def sample_own_answers(
    reasoner: Any,
    clips: ClipSet,
    count: int,
    temperature: float,
    limit: SafetyLimit | None = None,
    batch_size: int = 8,
) -> list[list[str]]:
    """``count`` sampled answers of the SFT model per clip (batch by batch).

    ``limit`` is the stage's safety limit: past it the stage fails rather than train
    on fewer pairs than configured.
    """
    from tqdm.auto import tqdm

    answers: list[list[str]] = [[] for _ in range(len(clips))]
    rows = clips.rows
    with tqdm(total=count * len(clips), desc="sampling SFT answers") as bar:
        for _ in range(count):
            for start in range(0, len(clips), batch_size):
                if limit is not None:
                    limit.check(bar.n, count * len(clips))
                stop = start + batch_size
                results = reasoner.reason(
                    list(rows.video_path[start:stop]),
                    list(rows.script[start:stop]),
                    images=clips.images[start:stop],
                    do_sample=True,
                    temperature=temperature,
                    batch_size=batch_size,
                )
                for i, result in enumerate(results, start=start):
                    answers[i].append(result.text)
                bar.update(len(results))
    return answers


def train_mpo(
    config: DubOpsConfig,
    data_dir: str | Path,
    sft_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    max_minutes: float | None = None,
    tracker: Any = None,
):
    """Run (or resume) MPO from a finished SFT folder; the result is saved in ``out_dir``."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from dubops.reasoning.callbacks import TimeLimit, TrackMetrics, ValidateEachEpoch, validate
    from dubops.reasoning.inference import Reasoner
    from dubops.reasoning.model import add_lora, load_reasoner
    from dubops.reasoning.sft import finish_stage, last_checkpoint, trainer_args

    began = time.monotonic()
    m = config.reasoning.mpo
    limit = SafetyLimit("reasoner_mpo", max_minutes or m.max_minutes, began)
    if m.torch_threads:
        torch.set_num_threads(m.torch_threads)
    out = Path(out_dir)
    model, processor, rc = load_reasoner(sft_dir)
    rc = rc.model_copy(update={"mpo": m})
    if rc.model == "pretrained":  # the SFT adapters are merged: MPO trains fresh ones
        model = add_lora(model, rc)
    ref_model, _, _ = load_reasoner(sft_dir)
    ref_model.requires_grad_(False)
    train = load_clips(data_dir, ["train"], rc, limit=m.train_clips)
    val = load_clips(data_dir, ["val"], rc, limit=m.eval_clips)
    reasoner = Reasoner(model, processor, rc)
    before = validate(model, processor, rc, val) if len(val) else {}
    before.pop("samples", None)
    torch.manual_seed(m.seed)
    own = sample_own_answers(reasoner, train, m.own_samples, m.sample_temperature, limit)
    eos = processor.tokenizer.eos_token
    rows, counts = preference_rows(train, reasoner.prompt, eos, m, own)
    logger.info("MPO pairs: %d (%s)", len(rows), counts)
    if tracker is not None:
        tracker.log_params({f"mpo_pairs_{k}": v for k, v in counts.items()})
    model.train()
    stopper = TimeLimit(limit)
    args = DPOConfig(
        **trainer_args(m, rc, out, len(rows)),
        beta=m.beta,
        loss_type=["sigmoid", "bco_pair", "sft"],
        loss_weights=[m.preference_weight, m.quality_weight, m.generation_weight],
    )
    trainer = mpo_trainer_class()(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        data_collator=RewardLabelCollator(DataCollatorForVisionPreference(processor=processor)),
        callbacks=[
            stopper,
            TrackMetrics(tracker, "mpo"),
            ValidateEachEpoch(processor, rc, val, tracker, "mpo"),
        ],
        format_weight=m.format_weight,
        accuracy_weight=m.accuracy_weight,
    )
    output = trainer.train(resume_from_checkpoint=last_checkpoint(out) if resume else None)
    stopper.enforce()
    extra = {"validation_before": before, "pairs": counts}
    result = finish_stage(
        "reasoner_mpo", trainer, output, (rc, processor, val), began, tracker, extra
    )
    return _guard(result, before, sft_dir, rc, m, tracker)


def _guard(result: Any, before: dict, sft_dir: str | Path, rc: Any, m: Any, tracker: Any) -> Any:
    """Keep the SFT weights in the MPO folder when MPO lowered a guarded validation score.

    The MPO paper's promise is "no worse than SFT"; a preference stage that makes the
    validation answers worse must not ship. The decision and both score sets are in
    ``stage.json`` (``extra.kept``), so the table shows what MPO itself did.
    """
    from dubops.reasoning.model import load_reasoner, save_reasoner

    after, margin = result.validation, m.guard_margin
    worse = [k for k in m.guard_metrics if k in before and after.get(k, 0.0) < before[k] + margin]
    result.extra["kept"] = "sft" if worse else "mpo"
    result.extra["guard"] = {"margin": margin, "failed_on": worse, "mpo_validation": after}
    if worse:
        logger.warning("MPO lowered %s on validation: keeping the SFT weights", worse)
        model, processor, _ = load_reasoner(sft_dir)
        save_reasoner(model, processor, rc, Path(result.out_dir))
        result.validation = before
    write_json(Path(result.out_dir) / "stage.json", asdict(result))
    if tracker is not None:
        tracker.set_tags({"mpo_kept": result.extra["kept"]})
        tracker.log_artifact(Path(result.out_dir) / "stage.json")
    return result
