"""The "graph synthesizer" stage: the progressive emotion graph trained with the ControlNet.

Starts from a finished ``controlnet`` folder: its base DiT stays frozen; the
ControlNet, its conditions and the duration predictor keep training together
with Authentic-Dubber's progressive graph and hierarchical aggregation
(:class:`dubops.emotion.conditioner.EmotionConditioner`) on the same speech
objective, through :class:`dubops.speech.trainer.Trainer` (checkpoints and
exact resume, EMA, MLflow, samples).

Retrieval is fixed while the library is: every train and val clip is queried
once (speaker-agnostic, top ``library.k``, the clip itself excluded so nothing
leaks) and the tensors are cached in ``<out>/footage_cache/`` under the library
version (:func:`dubops.emotion.footage_batch.cached_footage`); "retrieval
computed once per epoch" is the same thing when the library does not change.

The folder it leaves is a dubbing folder like the ControlNet's (``vocab.json``,
``speech.json``, ``dubbing.safetensors``) plus ``graph.safetensors`` and
``graph.json`` (the emotion module and its settings, ablation included), and
``stage.json`` records the library version and K it expects;
:meth:`dubops.speech.generator.SpeechGenerator.from_dir` loads it with that library.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from dubops.config import DubOpsConfig
from dubops.emotion.conditioner import GRAPH_CONFIG, GRAPH_FILE, EmotionConditioner, is_graph_dir
from dubops.emotion.footage_batch import cached_footage
from dubops.emotion.graph_settings import graph_ablation
from dubops.errors import InputError
from dubops.fileio import write_json

# The stage helpers shared with the speech stages (run folder, samples, export, summary).
from dubops.speech.checkpoint import seed_everything
from dubops.speech.stages import (
    DUBBING_FILE,
    StageResult,
    export_weights,
    finish_stage,
    refine_pitch_head,
    start_run_folder,
    val_prompts,
    with_time_limit,
    write_samples,
)

log = logging.getLogger(__name__)

STAGE = "graph"


def train_graph(
    config: DubOpsConfig,
    data_dir: str | Path,
    controlnet_dir: str | Path,
    library_dir: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    max_minutes: float | None = None,
    tracker: Any = None,
    ablation: str | None = None,
) -> StageResult:
    """Train the graph synthesizer; see the module docstring.

    Args:
        config: the whole configuration (``graph``, ``library.k``/``backend``, ``audio``).
        data_dir: the corpus the ControlNet was trained on.
        controlnet_dir: a finished ``dubops train controlnet`` folder.
        library_dir: a built footage library (``dubops library build``).
        out_dir: the run folder.
        resume: continue from ``out_dir``'s latest checkpoint.
        max_minutes: safety limit replacing ``graph.training.max_minutes`` (fails the stage).
        tracker: a :class:`dubops.tracking.Tracker` or None.
        ablation: a Table 2 ablation name (overrides ``graph.ablation``).

    Raises:
        FileNotFoundError / ValueError: a missing ControlNet folder, a graph
            folder given as ``controlnet_dir``, a library of another vector size.
    """
    from dubops.feature_store.retrieval import FootageLibrary
    from dubops.speech.checkpoint import load_weights
    from dubops.speech.data import ClipDataset, collate_utterances
    from dubops.speech.generator import dub_clip_mel
    from dubops.speech.loading import load_dubbing_model
    from dubops.speech.trainer import Trainer

    start = time.time()
    data_dir, out, cn_dir = Path(data_dir), Path(out_dir), Path(controlnet_dir)
    graph = config.graph
    if ablation is not None:
        graph_ablation(ablation)  # a clear error for an unknown name
        graph = graph.model_copy(update={"ablation": ablation})
    if is_graph_dir(cn_dir):
        raise InputError(f"--controlnet {cn_dir} is a graph-stage folder; give a controlnet one")
    library = FootageLibrary.open(library_dir, backend=config.library.backend)
    version, k = str(library.info.version), config.library.k
    if library.info.dim != graph.input_dim:
        raise InputError(
            f"library vectors have {library.info.dim} dimensions but graph.input_dim is "
            f"{graph.input_dim}; set graph.input_dim={library.info.dim}"
        )
    model, vocab, speech = load_dubbing_model(cn_dir, add_pitch=config.speech.pitch)
    cn_stage = json.loads((cn_dir / "stage.json").read_text())
    cn = speech.controlnet
    seed_everything(graph.training.seed)  # the graph's initial weights are part of the run
    model.emotion_module = EmotionConditioner(graph, cn.visual_dim, cn.emotion_dim)
    model.freeze(graph.frozen)

    previous = out / GRAPH_CONFIG
    if resume and previous.is_file():
        before = json.loads(previous.read_text())
        now = json.loads(graph.model_dump_json())
        changed = sorted(key for key in now if key != "training" and before.get(key) != now[key])
        if changed:
            raise InputError(
                f"--resume: graph settings {changed} differ from the run in {out}; "
                "use the same ones or a new --out"
            )
    start_run_folder(out, vocab, speech)
    write_json(previous, json.loads(graph.model_dump_json()))
    write_json(
        out / "stage.json",
        {
            "pretrain_dir": cn_stage["pretrain_dir"],
            "controlnet_dir": str(cn_dir.resolve()),
            "library_dir": str(Path(library_dir).resolve()),
            "library_version": version,
            "library_k": k,
            "ablation": graph.ablation,
        },
    )
    train, val = ClipDataset.train_val(
        data_dir, config.audio, vocab, speech, graph.training.context
    )
    model.context = graph.training.context
    model.conclusion_drop_prob = graph.conclusion_drop_prob
    ids = [*train.manifest["clip_id"], *val.manifest["clip_id"]]
    footage = cached_footage(library, ids, k, out / "footage_cache", exclude_self=True)
    library.close()
    if tracker is not None:
        tracker.set_tags({"library_version": version, "graph_ablation": graph.ablation})
        tracker.log_params({"library_k": k, "footage_clips": len(ids)})
    mode = speech.text_mode

    def collate(items):
        batch = collate_utterances(items, mode)
        batch["footage"] = footage.batch([it["clip_id"] for it in items])
        return batch

    def sample_fn(m, step: int, folder: Path) -> list[Path]:
        named = {}
        for i, item, ref, prompt in val_prompts(val):
            clip = footage.batch([item["clip_id"]])
            named[f"val{i}"] = (dub_clip_mel(m, item, prompt, len(ref), speech, footage=clip), ref)
        return write_samples(folder, named, config)

    limited = with_time_limit(graph.training, max_minutes)
    trainer = Trainer(model, limited, out, tracker, sample_fn, stage="graph_synthesizer")
    result = trainer.fit(train, collate, train.lengths(), val, val.lengths(), resume=resume)
    if result.checkpoint is not None:
        load_weights(result.checkpoint, model, use_ema=True)
    refine_pitch_head(model, train, val, out, footage.batch)
    state = model.state_dict()
    graph_prefix = "emotion_module."
    export_weights(
        {k[len(graph_prefix) :]: v for k, v in state.items() if k.startswith(graph_prefix)},
        out / GRAPH_FILE,
    )
    weights = out / DUBBING_FILE
    export_weights(
        {k: v for k, v in state.items() if not k.startswith(("flow.", graph_prefix))}, weights
    )
    return finish_stage(STAGE, out, weights, result, start, tracker)
