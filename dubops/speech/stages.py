"""The two training stages of the speech generator as library functions.

``pretrain_dit`` (DeepDubber 2.1): flow matching on every training utterance
(clip targets and their timbre prompts). ``tune_controlnet`` (2.2): the frozen
pretrained DiT under a ControlNet conditioned on video and the conclusion, with
the duration predictor. Both run :class:`dubops.speech.trainer.Trainer`, log
through the tracker they are given, and leave in ``out_dir``:

* ``checkpoints/`` (resumable), ``samples/step_*/`` (wav + mel plot),
* ``vocab.json``, ``speech.json`` (the speech config the weights belong to),
* the exported EMA weights: ``dit.safetensors`` (F5 layout: loads into
  :class:`~dubops.speech.dit.DiT`) or ``dubbing.safetensors`` (the stage-2.2
  parts; the DiT is referenced through ``stage.json``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from dubops.audio import write_wav
from dubops.config import DubOpsConfig
from dubops.data.datasets import PhonemeVocab, load_manifest
from dubops.errors import InputError
from dubops.fileio import write_json
from dubops.speech.base_checkpoint import verify_base
from dubops.speech.cfm import FlowMatching
from dubops.speech.checkpoint import load_weights, seed_everything
from dubops.speech.data import (
    MODEL_NOTEXT,
    ClipDataset,
    UtteranceDataset,
    check_vocab_fits,
    collate_utterances,
)
from dubops.speech.dubbing_model import DubbingModel
from dubops.speech.generator import dub_clip_mel
from dubops.speech.loading import (
    DIT_FILE,
    DUBBING_FILE,
    SPEECH_FILE,
    VOCAB_FILE,
    build_flow,
    load_dubbing_model,
    load_flow,
    load_stage_weights,
)
from dubops.speech.pretrained import CheckpointError
from dubops.speech.settings import SpeechConfig
from dubops.speech.synthesis import aligned_text, generate_mel, unaligned_text
from dubops.speech.train_config import TrainConfig
from dubops.speech.trainer import Trainer
from dubops.speech.vocoder import GriffinLimVocoder

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    """What a stage run ended with (also written to ``out_dir/stage.json``)."""

    stage: str
    out_dir: str
    weights: str
    step: int
    train_loss: float | None
    val_loss: float | None
    minutes: float  # this run, end to end
    # With the parts before it (``--resume``): their training loops up to the
    # checkpoint resumed from, plus ``minutes``; ``parts`` counts the runs.
    minutes_total: float
    parts: int


def _vocab(data_dir: Path, speech: SpeechConfig) -> PhonemeVocab:
    """The corpus's phoneme vocabulary, or the warm-start checkpoint's own.

    A DiT's text embedding rows are indexed by its vocabulary, and a corpus's
    vocabulary is ordered by frequency: a checkpoint that carries ``vocab.json``
    beside it keeps its ids, and the corpus must not need symbols it lacks.
    """
    corpus = PhonemeVocab.from_manifest(load_manifest(data_dir))
    beside = Path(speech.pretrained_dit).parent / VOCAB_FILE if speech.pretrained_dit else None
    if beside is None or not beside.is_file():
        check_vocab_fits(corpus, speech.dit.text_num_embeds)
        return corpus
    vocab = PhonemeVocab.load(beside)
    unknown = sorted(set(corpus.symbols) - set(vocab.symbols))
    if unknown:
        raise CheckpointError(
            f"speech.pretrained_dit {speech.pretrained_dit}: the corpus uses phonemes its "
            f"vocabulary lacks ({' '.join(unknown[:10])}); train from scratch "
            "(--set speech.pretrained_dit=null) or on a corpus with the same phoneme set"
        )
    return vocab


def load_controlnet_start(model: DubbingModel, path: str | Path) -> None:
    """Warm-start stage 2.2 from a ``dubbing.safetensors`` (a shipped base or the champion).

    Only the stage-2.2 parts are read; the DiT is the frozen one already loaded.
    """
    if not Path(path).is_file():
        raise CheckpointError(
            f"speech.pretrained_controlnet {path} does not exist; pass a dubbing.safetensors "
            "or --set speech.pretrained_controlnet=null"
        )
    load_stage_weights(model, path, new=("pitch.",))


def with_time_limit(train: TrainConfig, max_minutes: float | None) -> TrainConfig:
    """``train`` with its ``max_minutes`` safety limit replaced when one is given."""
    return train if max_minutes is None else train.model_copy(update={"max_minutes": max_minutes})


def _mel_png(mels: dict[str, torch.Tensor], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(mels), 1, figsize=(8, 1.8 * len(mels)), squeeze=False)
    for ax, (name, mel) in zip(axes[:, 0], mels.items(), strict=True):
        ax.imshow(mel.T.numpy(), origin="lower", aspect="auto", cmap="magma")
        ax.set_title(name, fontsize=8)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def write_samples(
    folder: Path, named: dict[str, tuple[torch.Tensor, torch.Tensor]], config: DubOpsConfig
) -> list[Path]:
    """``{name: (generated mel, reference mel)}`` -> wavs (Griffin-Lim) and one mel plot."""
    folder.mkdir(parents=True, exist_ok=True)
    vocoder = GriffinLimVocoder(config.audio)
    files, plots = [], {}
    for name, (mel, ref) in named.items():
        wave = vocoder.decode(mel.T)[0].numpy()
        path = folder / f"{name}.wav"
        write_wav(path, wave, config.audio.sample_rate)
        files.append(path)
        plots[f"{name} generated"] = mel
        plots[f"{name} reference"] = ref
    files.append(_mel_png(plots, folder / "mels.png"))
    return files


def start_run_folder(out: Path, vocab: PhonemeVocab, speech: SpeechConfig) -> None:
    """The vocabulary and speech config the exported weights belong to."""
    out.mkdir(parents=True, exist_ok=True)
    vocab.save(out / VOCAB_FILE)
    write_json(out / SPEECH_FILE, json.loads(speech.model_dump_json()))


def val_prompts(val, count: int = 2):
    """``(index, item, reference mel, prompt = its first quarter)`` of a few val items."""
    for i in range(min(count, len(val))):
        item = val[i]
        ref = item["mel"]
        yield i, item, ref, ref[: max(1, len(ref) // 4)]


def export_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """Exported EMA weights as safetensors, atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)


def finish_stage(
    stage: str, out: Path, weights: Path, result: Any, start: float, tracker: Any
) -> StageResult:
    minutes = (time.time() - start) / 60
    summary = StageResult(
        stage=stage,
        out_dir=str(out),
        weights=str(weights),
        step=result.step,
        train_loss=result.train_loss,
        val_loss=result.val_loss,
        minutes=round(minutes, 2),
        minutes_total=round(minutes + result.earlier_s / 60, 2),
        parts=result.parts,
    )
    previous = out / "stage.json"
    extra = json.loads(previous.read_text()) if previous.is_file() else {}
    write_json(previous, {**extra, **asdict(summary)})
    if tracker is not None:
        tracker.log_artifact(previous)
    return summary


def pretrain_dit(
    config: DubOpsConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    max_minutes: float | None = None,
    tracker: Any = None,
) -> StageResult:
    """Stage 2.1: flow-matching pretraining of the DiT on the corpus's training split."""
    start = time.time()
    data_dir, out = Path(data_dir), Path(out_dir)
    speech = config.speech
    if speech.pretrain.context != "self":
        raise InputError(
            f"speech.pretrain.context is {speech.pretrain.context!r}, but the DiT pretrains by "
            "infilling only: set speech.pretrain.context=self (prompt and mixed are for "
            "speech.controlnet_training and graph.training)"
        )
    if speech.pretrained_dit:
        verify_base(Path(speech.pretrained_dit).parent)
    vocab = _vocab(data_dir, speech)
    start_run_folder(out, vocab, speech)
    train = UtteranceDataset(data_dir, config.audio, ["train"], vocab, include_prompts=True)
    val = UtteranceDataset(data_dir, config.audio, ["val"], vocab, include_prompts=False)
    seed_everything(speech.pretrain.seed)  # the random initial weights are part of the run
    flow = build_flow(speech)
    mode = speech.text_mode

    def collate(items):
        return collate_utterances(items, mode)

    def sample_fn(model: FlowMatching, step: int, folder: Path) -> list[Path]:
        named = {}
        for i, item, ref, prompt in val_prompts(val):
            if mode == "aligned":
                # The first quarter plays the prompt; the rest follows the true durations.
                text = aligned_text(0, item["phonemes"], item["durations"])
                text[0, : len(prompt)] = MODEL_NOTEXT
            else:
                text = unaligned_text(item["phonemes"][:0], item["phonemes"])
            mel = generate_mel(model, prompt, text, len(ref) - len(prompt), speech.sampler)
            named[f"val{i}"] = (torch.cat([prompt, mel]), ref)
        return write_samples(folder, named, config)

    limited = with_time_limit(speech.pretrain, max_minutes)
    trainer = Trainer(flow, limited, out, tracker, sample_fn, stage="dit_pretrain")
    result = trainer.fit(train, collate, train.lengths(), val, val.lengths(), resume=resume)
    if result.checkpoint is not None:
        load_weights(result.checkpoint, flow, use_ema=True)
    weights = out / DIT_FILE
    export_weights(flow.backbone.state_dict(), weights)
    return finish_stage("dit-pretrain", out, weights, result, start, tracker)


def tune_controlnet(
    config: DubOpsConfig,
    data_dir: str | Path,
    pretrain_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    max_minutes: float | None = None,
    tracker: Any = None,
) -> StageResult:
    """Stage 2.2: ControlNet + conditions + duration predictor over the frozen DiT."""
    start = time.time()
    data_dir, out = Path(data_dir), Path(out_dir)
    flow, vocab, pre_speech = load_flow(pretrain_dir)
    # The DiT's shape and text mode come from the pretrained folder; the rest from config.
    speech = config.speech.model_copy(
        update={"dit": pre_speech.dit, "text_mode": pre_speech.text_mode}
    )
    start_run_folder(out, vocab, speech)
    write_json(out / "stage.json", {"pretrain_dir": str(Path(pretrain_dir).resolve())})
    context = speech.controlnet_training.context
    train, val = ClipDataset.train_val(data_dir, config.audio, vocab, speech, context)
    seed_everything(speech.controlnet_training.seed)  # initial weights, as the DiT's
    model = DubbingModel(flow, speech, len(vocab), context=context)
    if speech.pretrained_controlnet:
        verify_base(Path(speech.pretrained_controlnet).parent)
        load_controlnet_start(model, speech.pretrained_controlnet)
    mode = speech.text_mode

    def collate(items):
        return collate_utterances(items, mode)

    def sample_fn(m: DubbingModel, step: int, folder: Path) -> list[Path]:
        named = {}
        for i, item, ref, prompt in val_prompts(val):
            mel = dub_clip_mel(m, item, prompt, len(ref), speech)
            named[f"val{i}"] = (mel, ref)
        return write_samples(folder, named, config)

    limited = with_time_limit(speech.controlnet_training, max_minutes)
    trainer = Trainer(model, limited, out, tracker, sample_fn, stage="controlnet_tune")
    result = trainer.fit(train, collate, train.lengths(), val, val.lengths(), resume=resume)
    if result.checkpoint is not None:
        load_weights(result.checkpoint, model, use_ema=True)
    if speech.duration_refine.steps:
        _refine(model, train, val, config, speech.duration_refine, out, tracker)
    refine_pitch_head(model, train, val, out)
    weights = out / DUBBING_FILE
    export_weights(_dubbing_state(model), weights)
    return finish_stage("controlnet", out, weights, result, start, tracker)


def _dubbing_state(model: DubbingModel) -> dict[str, torch.Tensor]:
    """The stage-2.2 parts of a model (the frozen DiT and a graph live in their own files)."""
    skip = ("flow.", "emotion_module.")
    return {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}


def _refine(model, train, val, config: DubOpsConfig, refine, out: Path, tracker) -> Any:
    from dubops.speech.duration_refine import refine_durations

    mel_per_frame = config.audio.sample_rate / config.audio.hop_length / config.video.fps
    drop = model.config.controlnet.condition_drop_prob
    refined = refine_durations(model, train, val, refine, drop, mel_per_frame, tracker)
    _record_in_stage(out, "duration_refine", asdict(refined))
    return refined


def _record_in_stage(out: Path, key: str, record: dict | float) -> None:
    """Add ``key: record`` to the run folder's ``stage.json``, keeping what it holds."""
    stage = out / "stage.json"
    previous = json.loads(stage.read_text()) if stage.is_file() else {}
    write_json(stage, {**previous, key: record})


def refine_pitch_head(model: DubbingModel, train, val, out: Path, footage: Any = None) -> Any:
    """The pitch head trained on alone on frozen conditions (``speech.pitch.refine_steps``),
    then its contour spread fitted on val (``speech.pitch.fit_contour_scale``).

    ``footage`` (clip ids -> a graph model's footage batch) feeds a graph stage's
    emotion module. Recorded in ``stage.json``; nothing happens without a head.
    """
    pitch = model.config.pitch
    if model.pitch is None:
        return None
    from dubops.speech.pitch_refine import measure_contour_spread, refine_pitch

    if pitch.refine_steps:
        refined = refine_pitch(model, train, val, pitch, footage)
        _record_pitch_refine(model, out, refined, pitch.fit_contour_scale)
        return refined
    if pitch.fit_contour_scale:
        _serve_contour_scale(model, out, measure_contour_spread(model, val, pitch, footage))
    return None


def _record_pitch_refine(model: DubbingModel, out: Path, refined: Any, fit: bool) -> None:
    """``stage.json`` records a refinement; with ``fit`` the folder serves its contour spread."""
    _record_in_stage(out, "pitch_refine", asdict(refined))
    if fit:
        _serve_contour_scale(model, out, refined.contour_spread)


def _serve_contour_scale(model: DubbingModel, out: Path, scale: float) -> None:
    """The run folder's ``speech.json`` serves the val-fitted ``pitch.contour_scale``
    (recorded in ``stage.json`` as ``contour_scale_fit``)."""
    pitch = model.config.pitch.model_copy(update={"contour_scale": round(scale, 3)})
    model.config = model.config.model_copy(update={"pitch": pitch})
    write_json(out / SPEECH_FILE, json.loads(model.config.model_dump_json()))
    _record_in_stage(out, "contour_scale_fit", pitch.contour_scale)


def refine_run_durations(
    config: DubOpsConfig, data_dir: str | Path, run_dir: str | Path, tracker: Any = None
) -> Any:
    """``dubops train duration``: refine a finished ControlNet folder's predictor in place.

    The network (sizes, word slots) is the folder's; the refinement settings
    (``speech.duration_refine``) come from ``config``. ``dubbing.safetensors``
    is replaced atomically; ``stage.json`` records the refinement.
    """
    out = Path(run_dir)
    model, vocab, speech = load_dubbing_model(out)
    refine = config.speech.duration_refine
    if not refine.steps:
        raise InputError(
            "speech.duration_refine.steps is 0: set it, "
            "e.g. --set speech.duration_refine.steps=3000"
        )
    train, val = ClipDataset.train_val(data_dir, config.audio, vocab, speech)
    refined = _refine(model, train, val, config, refine, out, tracker)
    export_weights(_dubbing_state(model), out / DUBBING_FILE)
    return refined


def refine_run_pitch(
    config: DubOpsConfig, data_dir: str | Path, run_dir: str | Path, tracker: Any = None
) -> Any:
    """``dubops train pitch``: refine a finished ControlNet or graph folder's pitch head in place.

    The head's shape is the folder's; the refinement settings
    (``speech.pitch.refine_steps``, ``refine_lr``, ``refine_eval_every``) come from
    ``config``. A graph folder's emotion module reads the footage its stage
    cached (retrieved again from the library it names when the cache is gone).
    Only the head changes: ``dubbing.safetensors`` is replaced atomically and
    ``stage.json`` records the refinement.
    """
    from dubops.emotion.conditioner import GRAPH_CONFIG, is_graph_dir
    from dubops.emotion.graph_settings import GraphConfig
    from dubops.speech.pitch_refine import refine_pitch

    out = Path(run_dir)
    model, vocab, speech = load_dubbing_model(out)
    if model.pitch is None:
        raise InputError(
            f"--model {out} has no pitch head (it trained with speech.pitch.enabled off); "
            "retrain its stage with --set speech.pitch.enabled=true"
        )
    wanted = config.speech.pitch
    if not wanted.refine_steps:
        raise InputError(
            "speech.pitch.refine_steps is 0: set it, e.g. --set speech.pitch.refine_steps=1000"
        )
    pitch = speech.pitch.model_copy(
        update={
            "refine_steps": wanted.refine_steps,
            "refine_lr": wanted.refine_lr,
            "refine_eval_every": wanted.refine_eval_every,
            "fit_contour_scale": wanted.fit_contour_scale,
        }
    )
    # A graph folder trains (and so refines) with its own graph.training context and footage.
    graph = (
        GraphConfig.model_validate_json((out / GRAPH_CONFIG).read_text())
        if is_graph_dir(out)
        else None
    )
    context = graph.training.context if graph else speech.controlnet_training.context
    model.context = context
    train, val = ClipDataset.train_val(data_dir, config.audio, vocab, speech, context)
    footage = None
    if graph:
        ids = [*train.manifest["clip_id"], *val.manifest["clip_id"]]
        footage = _graph_footage(config, ids, out)
    refined = refine_pitch(model, train, val, pitch, footage)
    _record_pitch_refine(model, out, refined, pitch.fit_contour_scale)
    if tracker is not None:
        tracker.log_metrics(
            {
                "pitch_val_loss_before": refined.val_loss_before,
                "pitch_val_loss_after": refined.val_loss_after,
                "pitch_contour_spread": refined.contour_spread,
            }
        )
    export_weights(_dubbing_state(model), out / DUBBING_FILE)
    return refined


def _graph_footage(config: DubOpsConfig, clip_ids: list[str], out: Path) -> Any:
    """The footage batch function a graph folder trained with (its cache, or the library)."""
    from dubops.emotion.footage_batch import cached_footage
    from dubops.feature_store.retrieval import FootageLibrary

    stage = json.loads((out / "stage.json").read_text())
    library = FootageLibrary.open(stage["library_dir"], backend=config.library.backend)
    try:
        if str(library.info.version) != stage["library_version"]:
            raise InputError(
                f"the library {stage['library_dir']} changed since {out} trained "
                f"(version {library.info.version}, trained on {stage['library_version']}); "
                "retrain the graph stage on it"
            )
        footage = cached_footage(library, clip_ids, stage["library_k"], out / "footage_cache")
    finally:
        library.close()
    return footage.batch
