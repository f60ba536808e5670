"""The reasoner's stages on the real code path at micro size: SFT, resume, MPO, inference."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch.nn import functional as nnf

from tests.fixtures.reasoner import micro_config

pytestmark = pytest.mark.slow


def test_sft_overfits_a_handful_of_clips_to_exact_answers(small_synthetic_corpus, tmp_path):
    from dubops.reasoning.inference import Reasoner
    from dubops.reasoning.sft import train_sft
    from dubops.reasoning.training_data import load_clips

    config = micro_config(
        "reasoning.language.hidden_size=128",
        "reasoning.max_new_tokens=512",  # the micro BPE (400) spends ~250 tokens per answer
        "reasoning.sft.train_clips=2",
        "reasoning.sft.epochs=150",
        "reasoning.sft.batch_size=1",
        "reasoning.sft.lr=1e-3",
        "reasoning.sft.eval_clips=0",
    )
    result = train_sft(config, small_synthetic_corpus, tmp_path / "sft", tracker=None)
    assert result.steps == 300
    reasoner = Reasoner.from_dir(tmp_path / "sft")
    clips = load_clips(small_synthetic_corpus, ["train"], reasoner.config, limit=2)
    answers = reasoner.reason(
        list(clips.rows.video_path), list(clips.rows.script), images=clips.images
    )
    assert [a.text for a in answers] == list(clips.rows.cot)
    assert all(a.parse_ok for a in answers)


def test_sft_resumes_from_its_checkpoint_without_warming_up_again(small_synthetic_corpus, tmp_path):
    from dubops.reasoning.sft import train_sft

    common = [
        "reasoning.sft.train_clips=4",
        "reasoning.sft.batch_size=2",
        "reasoning.sft.eval_clips=2",
    ]
    first = train_sft(
        micro_config(*common, "reasoning.sft.epochs=1"), small_synthetic_corpus, tmp_path
    )
    init_weights = (tmp_path / "init" / "model.safetensors").stat().st_mtime_ns
    again = train_sft(
        micro_config(*common, "reasoning.sft.epochs=2"),
        small_synthetic_corpus,
        tmp_path,
        resume=True,
    )
    assert (first.steps, again.steps) == (2, 4)
    assert (tmp_path / "init" / "model.safetensors").stat().st_mtime_ns == init_weights
    assert 0.0 <= again.validation["format_validity"] <= 1.0
    assert json.loads((tmp_path / "stage.json").read_text())["steps"] == 4


def _micro_model(corpus, clips: int):
    from dubops.reasoning.model import build_processor, build_tiny
    from dubops.reasoning.tokenizer import train_tokenizer
    from dubops.reasoning.training_data import load_clips, text_corpus

    rc = micro_config().reasoning
    train = load_clips(corpus, ["train"], rc, limit=clips)
    tokenizer = train_tokenizer(text_corpus(train), rc.language.vocab_size)
    torch.manual_seed(0)
    return build_tiny(rc, tokenizer), build_processor(rc, tokenizer), rc, train


def _completion_logps(model, batch):
    """Per-sequence and per-token completion log-likelihoods, computed directly."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}
    logits = model(**inputs).logits[:, :-1]
    targets = batch["input_ids"][:, 1:]
    mask = batch["completion_mask"][:, 1:].float()
    token = nnf.log_softmax(logits.float(), -1).gather(-1, targets[..., None])[..., 0] * mask
    return token.sum(1), token, mask


def test_mpo_loss_is_the_weighted_sum_of_its_terms(small_synthetic_corpus, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from dubops.reasoning.inference import Reasoner
    from dubops.reasoning.mpo import RewardLabelCollator, mpo_trainer_class, preference_rows

    model, processor, rc, train = _micro_model(small_synthetic_corpus, clips=2)
    reference = copy.deepcopy(model)
    with torch.no_grad():  # a policy that differs from its reference: every term is non-trivial
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    m = rc.mpo.model_copy(update={"format_weight": 0.3, "accuracy_weight": 0.7})
    prompt_of = Reasoner(model, processor, rc).prompt
    eos = processor.tokenizer.eos_token
    own = [["<SUMMARY>broken"], ["<SUMMARY>x</SUMMARY>"]]  # malformed own samples
    rows, counts = preference_rows(train, prompt_of, eos, m, own)
    assert counts["own_malformed"] == 2 and len(rows) == 2 * m.rejected_per_clip + 2
    collator = RewardLabelCollator(DataCollatorForVisionPreference(processor=processor))
    args = DPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        beta=m.beta,
        max_length=None,
        remove_unused_columns=False,
        loss_type=["sigmoid", "bco_pair", "sft"],
        loss_weights=[m.preference_weight, m.quality_weight, m.generation_weight],
    )
    trainer = mpo_trainer_class()(
        model=model,
        ref_model=reference,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=processor,
        data_collator=collator,
        format_weight=m.format_weight,
        accuracy_weight=m.accuracy_weight,
    )
    batch = collator([dict(r) for r in rows])
    fmt_labels, acc_labels = batch["format_ok"].clone(), batch["answer_ok"].clone()
    model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        policy, token, mask = _completion_logps(model, batch)
        ref, _, _ = _completion_logps(reference, batch)
    b = len(rows)
    ratio = policy - ref
    chosen, rejected = ratio[:b], ratio[b:]
    beta = m.beta
    dpo = -nnf.logsigmoid(beta * (chosen - rejected)).mean()
    bco = (-nnf.logsigmoid(beta * chosen) - nnf.logsigmoid(-beta * rejected)).mean()
    sft = -(token[:b].sum() / mask[:b].sum())
    fmt = nnf.binary_cross_entropy_with_logits(beta * ratio, fmt_labels.float())
    acc = nnf.binary_cross_entropy_with_logits(beta * ratio, acc_labels.float())
    expected = 0.8 * dpo + 0.2 * bco + 1.0 * sft + 0.3 * fmt + 0.7 * acc
    assert fmt_labels.tolist()[b:].count(0.0) >= 2  # the malformed samples are labelled so
    assert float(loss) == pytest.approx(float(expected), rel=1e-4)
    assert trainer.last_terms["format_loss"] == pytest.approx(float(fmt), rel=1e-4)


def test_batched_greedy_answers_equal_one_at_a_time(small_synthetic_corpus):
    from dubops.reasoning.inference import Reasoner

    model, processor, rc, train = _micro_model(small_synthetic_corpus, clips=3)
    reasoner = Reasoner(model.eval(), processor, rc)
    scripts = ["Hi.", *list(train.rows.script[1:])]  # different prompt lengths: left padding
    paths = [small_synthetic_corpus / p for p in train.rows.video_path]
    together = reasoner.reason(paths, scripts, batch_size=3, max_new_tokens=12)
    alone = [
        reasoner.reason([p], [s], max_new_tokens=12)[0] for p, s in zip(paths, scripts, strict=True)
    ]
    assert [r.text for r in together] == [r.text for r in alone]
    assert all(not r.parse_ok and r.error for r in together)  # random weights: no contract
    assert reasoner.conclusion_for(together[0]).scene_type == "monologue"
    assert reasoner.fallbacks == 1


def test_drafted_greedy_answers_are_the_token_by_token_ones_in_fewer_passes(
    small_synthetic_corpus,
):
    from dubops.reasoning.inference import Reasoner

    model, processor, rc, train = _micro_model(small_synthetic_corpus, clips=3)
    scripts = list(train.rows.script)
    paths = [small_synthetic_corpus / p for p in train.rows.video_path]

    def answers(reasoner):
        return [
            reasoner.reason([p], [s], max_new_tokens=40)[0].text
            for p, s in zip(paths, scripts, strict=True)
        ]

    plain = Reasoner(model.eval(), processor, rc, lookahead=0)
    expected = answers(plain)
    drafted = Reasoner(model, processor, rc)
    assert answers(drafted) == expected  # the draft learns as it answers
    before = drafted.passes
    assert answers(drafted) == expected
    assert drafted.passes - before < plain.passes / 3


def test_a_local_pretrained_checkpoint_trains_lora_adapters(small_synthetic_corpus, tmp_path):
    """The base preset's path (local checkpoint + LoRA) on a small checkpoint we save."""
    from safetensors.torch import load_file

    from dubops.reasoning.inference import Reasoner
    from dubops.reasoning.sft import train_sft

    model, processor, _, _ = _micro_model(small_synthetic_corpus, clips=8)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    before = load_file(checkpoint / "model.safetensors")
    config = micro_config(
        "reasoning.model=pretrained",
        f"reasoning.pretrained_path={checkpoint}",
        "reasoning.warmup.epochs=0",
        "reasoning.lora.r=4",
        "reasoning.sft.train_clips=4",
        "reasoning.sft.batch_size=2",
        "reasoning.sft.epochs=1",
        "reasoning.sft.lr=1e-2",
        "reasoning.sft.eval_clips=2",
    )
    result = train_sft(config, small_synthetic_corpus, tmp_path / "sft")
    assert result.steps == 2
    after = load_file(tmp_path / "sft" / "model.safetensors")
    assert not any("lora" in name for name in after)  # merged into plain weights
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed and all("language_model" in n and "_proj" in n for n in changed)
    answer = Reasoner.from_dir(tmp_path / "sft").reason_one(
        small_synthetic_corpus
        / "video"
        / sorted(p.name for p in (small_synthetic_corpus / "video").iterdir())[0],
        "Hello.",
    )
    assert isinstance(answer.text, str)


def test_mpo_stage_runs_from_an_sft_folder_and_reports_before_and_after(
    small_synthetic_corpus, tmp_path
):
    from dubops.reasoning.inference import Reasoner
    from dubops.reasoning.mpo import train_mpo
    from dubops.reasoning.sft import train_sft

    small = ["reasoning.sft.train_clips=4", "reasoning.sft.batch_size=2", "reasoning.sft.epochs=1"]
    train_sft(
        micro_config(*small, "reasoning.sft.eval_clips=2"), small_synthetic_corpus, tmp_path / "sft"
    )
    config = micro_config(
        "reasoning.mpo.train_clips=3",
        "reasoning.mpo.own_samples=1",
        "reasoning.mpo.batch_size=4",
        "reasoning.mpo.epochs=1",
        "reasoning.mpo.eval_clips=2",
        "reasoning.max_new_tokens=24",
    )
    result = train_mpo(config, small_synthetic_corpus, tmp_path / "sft", tmp_path / "mpo")
    pairs = result.extra["pairs"]
    assert pairs["corpus"] == 3 * 2  # two corpus rejected variants per clip
    assert pairs["own_wrong"] + pairs["own_malformed"] + pairs["own_correct_skipped"] == 3
    assert result.steps == -(-(6 + pairs["own_wrong"] + pairs["own_malformed"]) // 4)
    assert set(result.extra["validation_before"]) >= {"format_validity", "scene_type_accuracy"}
    assert Reasoner.from_dir(tmp_path / "mpo").config.mpo.own_samples == 1
    assert result.extra["kept"] in ("mpo", "sft")


def test_mpo_that_does_not_reach_the_sft_scores_keeps_the_sft_weights(
    small_synthetic_corpus, tmp_path
):
    from safetensors.torch import load_file

    from dubops.reasoning.mpo import train_mpo
    from dubops.reasoning.sft import train_sft

    small = ["reasoning.sft.train_clips=2", "reasoning.sft.batch_size=2", "reasoning.sft.epochs=1"]
    train_sft(
        micro_config(*small, "reasoning.sft.eval_clips=2"), small_synthetic_corpus, tmp_path / "sft"
    )
    config = micro_config(
        "reasoning.mpo.train_clips=2",
        "reasoning.mpo.own_samples=0",
        "reasoning.mpo.batch_size=4",
        "reasoning.mpo.epochs=1",
        "reasoning.mpo.lr=1e-2",
        "reasoning.mpo.eval_clips=2",
        "reasoning.mpo.guard_margin=1.5",  # unreachable: the guard must refuse
        "reasoning.max_new_tokens=16",
    )
    result = train_mpo(config, small_synthetic_corpus, tmp_path / "sft", tmp_path / "mpo")
    assert result.extra["kept"] == "sft" and result.extra["guard"]["failed_on"]
    sft, kept = (load_file(tmp_path / d / "model.safetensors") for d in ("sft", "mpo"))
    assert all(torch.equal(sft[k], kept[k]) for k in sft)
