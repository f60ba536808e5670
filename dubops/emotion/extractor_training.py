"""``dubops train extractors``: train the scene, face, text and audio emotion extractors.

Each clip's media is decoded once; every extractor prepares its own inputs from
it right away (sampled frames, face crops, sentence embeddings, mels) and the
raw frames are dropped, so memory holds only the small prepared arrays. Each
network is then trained on the train split with cross-entropy on the 7
emotions and scored on the held-out splits (val, test_s1, test_s2).

Outputs in ``out_dir``: ``<modality>.safetensors`` + ``<modality>.json``
(settings, version, accuracy) and ``extractors.json`` (the summary), all
written atomically; the summary is written last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dubops.data.schema import EMOTIONS
from dubops.errors import InputError
from dubops.fileio import write_json
from dubops.safety_limit import SafetyLimit

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.emotion.extractors.base import TrainedExtractor
    from dubops.tracking import Tracker

logger = logging.getLogger(__name__)
HELD_OUT: tuple[str, ...] = ("val", "test_s1", "test_s2")


@dataclass
class ExtractorsResult:
    """What one training run produced."""

    accuracy: dict[str, dict[str, float]]  # modality -> split (train, val, test, ...) -> acc
    minutes: float
    versions: dict[str, str]
    epochs: dict[str, int] = field(default_factory=dict)
    out_dir: str = ""


def _accuracy(pred: np.ndarray, labels: np.ndarray, splits: np.ndarray) -> dict[str, float]:
    out = {}
    for name, mask in [
        *((s, splits == s) for s in ("train", *HELD_OUT)),
        ("test", np.isin(splits, ("test_s1", "test_s2"))),
    ]:
        if mask.any():
            out[name] = round(float(np.mean(pred[mask] == labels[mask])), 4)
    return out


def _prepare_all(
    extractors: dict[str, TrainedExtractor],
    config: DubOpsConfig,
    data_dir: Path,
    manifest: Any,
    tick: Callable[[], None],
) -> dict[str, list[Any]]:
    """Decode each clip once and keep every extractor's prepared inputs."""
    from dubops.data.layout import CorpusLayout
    from dubops.emotion.extractors.inputs import load_clip_inputs

    layout = CorpusLayout(data_dir)
    prepared: dict[str, list[Any]] = {name: [] for name in extractors}
    size = config.emotion.batch_size
    for start in range(0, len(manifest), size):
        batch = [
            load_clip_inputs(layout, row, config.audio.sample_rate)
            for _, row in manifest.iloc[start : start + size].iterrows()
        ]
        for name, extractor in extractors.items():
            prepared[name].extend(extractor.prepare(batch))
        for _ in batch:
            tick()
    return prepared


def _set_mel_statistics(extractor: TrainedExtractor, prepared: list[Any]) -> None:
    """Per-bin mean and std of the training speech's log-mels (the audio net's input scale)."""
    import torch

    frames = np.concatenate([p[0] for p in prepared])  # (sum n, m)
    extractor.net.mel_mean.copy_(torch.from_numpy(frames.mean(0)))
    extractor.net.mel_std.copy_(torch.from_numpy(frames.std(0) + 1e-3))


def train_extractors(
    config: DubOpsConfig,
    data_dir: str | Path,
    out_dir: str | Path,
    tracker: Tracker | None = None,
    max_minutes: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractorsResult:
    """Train the four emotion extractors and write them to ``out_dir``.

    Args:
        config: the whole config (``emotion`` section, ``audio`` front end).
        data_dir: the corpus folder.
        out_dir: where the extractors go.
        tracker: MLflow run to log params, metrics and the summary into.
        max_minutes: safety limit (default ``emotion.max_minutes``): past it the
            stage fails; the budget itself is each modality's ``fit.epochs``.
        progress: ``progress(done, total)`` over clip decoding then epochs.
    """
    import torch

    from dubops.data.datasets import load_manifest
    from dubops.data.layout import CorpusLayout, manifest_hash
    from dubops.emotion.extractor_fit import fit_extractor, predict
    from dubops.emotion.footage_vectors import MODALITIES, SUMMARY_NAME, extractor_class

    started = time.monotonic()
    cfg = config.emotion
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    budget = max_minutes if max_minutes is not None else cfg.max_minutes
    limit = SafetyLimit("train_extractors", budget, started)
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)

    manifest = load_manifest(data_dir)
    labels = manifest["emotion"].map(EMOTIONS.index).to_numpy()
    splits = manifest["split"].to_numpy()
    train_idx = np.flatnonzero(splits == "train")
    if len(train_idx) == 0:
        raise InputError(f"--data {data_dir}: the manifest has no train clips to learn from")
    fits = {name: getattr(cfg, name).fit for name in MODALITIES}
    done, total = 0, len(manifest) + sum(f.epochs for f in fits.values())

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    extractors = {
        name: extractor_class(name)(extractor_class(name).settings_from(config))
        for name in MODALITIES
    }
    prepared = _prepare_all(extractors, config, data_dir, manifest, tick)
    logger.info("prepared %d clips in %.1f s", len(manifest), time.monotonic() - started)
    if tracker is not None:
        tracker.log_params(
            {"extractors.train_clips": len(train_idx), "extractors.clips": len(manifest)}
        )

    accuracy: dict[str, dict[str, float]] = {}
    versions: dict[str, str] = {}
    epochs: dict[str, int] = {}
    seconds: dict[str, float] = {}
    for name in MODALITIES:
        t0 = time.monotonic()
        extractor = extractors[name]
        train_prepared = [prepared[name][j] for j in train_idx]
        if name == "audio":
            _set_mel_statistics(extractor, train_prepared)

        def on_epoch(epoch: int, loss: float, name: str = name) -> None:
            tick()
            if tracker is not None:
                tracker.log_metrics({f"{name}_train_loss": loss}, step=epoch)

        epochs[name] = fit_extractor(
            extractor, train_prepared, labels[train_idx], fits[name], cfg.seed, limit, on_epoch
        )
        accuracy[name] = _accuracy(predict(extractor, prepared[name]), labels, splits)
        seconds[name] = round(time.monotonic() - t0, 1)
        versions[name] = extractor.save(
            out_dir, {"accuracy": accuracy[name], "epochs": epochs[name]}
        )
        logger.info("%s extractor: accuracy %s (%.0f s)", name, accuracy[name], seconds[name])
        if tracker is not None:
            tracker.log_metrics({f"{name}_{s}_acc": a for s, a in accuracy[name].items()})

    minutes = round((time.monotonic() - started) / 60.0, 2)
    result = ExtractorsResult(accuracy, minutes, versions, epochs, str(out_dir))
    summary = {
        **asdict(result),
        "seconds": seconds,
        "chance": round(1 / len(EMOTIONS), 4),
        "data_version": manifest_hash(CorpusLayout(data_dir).manifest),
        "classes": list(EMOTIONS),
    }
    write_json(out_dir / SUMMARY_NAME, summary)
    if tracker is not None:
        tracker.log_metrics({"extractors_minutes": minutes})
        tracker.log_dict(summary, SUMMARY_NAME)
    return result
