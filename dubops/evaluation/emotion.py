"""The evaluation's speech emotion classifier (EMO-ACC, EMO-SIM).

Trained here on the corpus's training split, from speech alone plus the clip's
script length, and kept independent of any emotion extractor that conditions
the generator (its own features, model and training run), so generated speech
is never graded by the network that shaped it.

Features per utterance: log-F0 mean and spread, energy mean and spread, the
share of loud frames and seconds per word, each also as the difference from
the same features of the clip's timbre prompt (the same speaker talking
calmly): per-speaker normalisation that still works for unseen speakers.
Model: multinomial logistic regression, stored as JSON (no pickle) under
``<corpus>/evaluators/emotion/<version>/``, where the version hashes the
manifest and :data:`FEATURE_VERSION`; the held-out accuracy on ground-truth
speech (val + test splits), which bounds any model's EMO-ACC, is in ``meta.json``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dubops.data.layout import CorpusLayout, manifest_hash
from dubops.data.schema import EMOTIONS
from dubops.errors import InputError
from dubops.fileio import write_json
from dubops.sample_rates import ANALYSIS_SAMPLE_RATE

logger = logging.getLogger(__name__)
# emo-v2: the loud share is read from the same 80 ms / 20 ms RMS track as the energy
# statistics (emo-v1 computed a second, 1024 / 480-sample track for it).
FEATURE_VERSION = "emo-v2"
_SPEECH_FLOOR_DB = 40.0  # as the report's: frames this far below the loudest are silence


def utterance_features(wave: np.ndarray, sample_rate: int, words: int) -> np.ndarray:
    """``[logf0_mean, logf0_std, energy_mean, energy_std, loud_share, seconds_per_word]``.

    One analysis (:func:`dubops.data.report.prosody.pitch_energy_track`, shared with
    the corpus report) serves the pitch and energy statistics and the loud share.
    """
    from dubops.data.report.prosody import pitch_energy_track

    db, logf0, speech = pitch_energy_track(wave, sample_rate)
    loud = float(np.mean(db > db.max() - _SPEECH_FLOOR_DB / 2))
    seconds_per_word = len(wave) / sample_rate / max(1, words)
    return np.array(
        [logf0.mean(), logf0.std(), speech.mean(), speech.std(), loud, seconds_per_word],
        dtype=float,
    )


def clip_features(wave, prompt_wave, sample_rate: int, script: str, prompt_text: str) -> np.ndarray:
    """Utterance features and their difference from the timbre prompt's."""
    own = utterance_features(wave, sample_rate, len(script.split()))
    prompt = utterance_features(prompt_wave, sample_rate, len(prompt_text.split()))
    return combine_features(own, prompt)


def combine_features(own: np.ndarray, prompt: np.ndarray) -> np.ndarray:
    """:func:`clip_features` from the two utterances' features (the prompt's computed once
    when several waves are graded against the same prompt)."""
    return np.nan_to_num(np.concatenate([own, own - prompt]))


@dataclass
class EmotionClassifier:
    """Logistic regression over :func:`clip_features`, with its standardisation."""

    classes: list[str]
    coef: np.ndarray  # (c, f)
    intercept: np.ndarray  # (c,)
    mean: np.ndarray  # (f,)
    scale: np.ndarray  # (f,)
    directory: Path | None = None

    def predict_proba_features(self, features: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(features) - self.mean) / self.scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict_proba(
        self,
        wave: np.ndarray,
        sample_rate: int,
        prompt_wave: np.ndarray,
        script: str,
        prompt_text: str,
    ) -> np.ndarray:
        """Class probabilities ``(7,)`` in :data:`EMOTIONS` order."""
        feats = clip_features(wave, prompt_wave, sample_rate, script, prompt_text)
        return self.predict_proba_features(feats)[0]

    def save(self, directory: str | Path, meta: dict) -> Path:
        out = Path(directory)
        write_json(
            out / "model.json",
            {
                "classes": self.classes,
                "coef": self.coef.tolist(),
                "intercept": self.intercept.tolist(),
                "mean": self.mean.tolist(),
                "scale": self.scale.tolist(),
                "feature_version": FEATURE_VERSION,
            },
        )
        write_json(out / "meta.json", meta)
        self.directory = out
        return out

    @classmethod
    def load(cls, directory: str | Path) -> EmotionClassifier:
        path = Path(directory) / "model.json"
        if not path.is_file():
            raise InputError(f"no emotion classifier at {path}; run `dubops eval` to train one")
        data = json.loads(path.read_text())
        if data.get("feature_version") != FEATURE_VERSION:
            raise ValueError(f"{path} was trained with features {data.get('feature_version')}")
        return cls(
            classes=list(data["classes"]),
            coef=np.array(data["coef"]),
            intercept=np.array(data["intercept"]),
            mean=np.array(data["mean"]),
            scale=np.array(data["scale"]),
            directory=Path(directory),
        )


def _features_of(layout: CorpusLayout, rows: pd.DataFrame, sr: int) -> np.ndarray:
    from dubops.audio import read_wav

    feats = []
    for row in rows.itertuples(index=False):
        wave, _ = read_wav(layout.resolve(row.audio_path), sr)
        prompt, _ = read_wav(layout.resolve(row.prompt_audio_path), sr)
        feats.append(clip_features(wave, prompt, sr, row.script, row.prompt_text))
    return np.array(feats)


def classifier_version(corpus_root: str | Path) -> str:
    """Version of the classifier a corpus gets: manifest hash + feature version."""
    digest = manifest_hash(CorpusLayout(Path(corpus_root)).manifest) + FEATURE_VERSION
    return hashlib.sha256(digest.encode()).hexdigest()[:12]


def train_emotion_classifier(corpus_root: str | Path) -> EmotionClassifier:
    """Fit on the train split, measure on val + test, store under the corpus."""
    from sklearn.linear_model import LogisticRegression

    layout = CorpusLayout(Path(corpus_root))
    manifest = pd.read_parquet(layout.manifest)
    train = manifest[manifest["split"] == "train"]
    held = manifest[manifest["split"] != "train"]
    if train["emotion"].nunique() < 2:
        raise ValueError("the emotion classifier needs at least two emotions in the train split")
    sr = ANALYSIS_SAMPLE_RATE
    x_train = _features_of(layout, train, sr)
    mean, scale = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8
    model = LogisticRegression(max_iter=2000, C=1.0)
    model.fit((x_train - mean) / scale, train["emotion"].to_numpy())
    coef = np.zeros((len(EMOTIONS), x_train.shape[1]))
    intercept = np.full(len(EMOTIONS), -1e9)  # emotions absent from training: never predicted
    if len(model.classes_) == 2:  # sklearn's binary form: one row, for the second class
        first, second = (EMOTIONS.index(c) for c in model.classes_)
        intercept[first] = 0.0
        coef[second], intercept[second] = model.coef_[0], model.intercept_[0]
    else:
        for i, label in enumerate(model.classes_):
            j = EMOTIONS.index(label)
            coef[j], intercept[j] = model.coef_[i], model.intercept_[i]
    classifier = EmotionClassifier(list(EMOTIONS), coef, intercept, mean, scale)
    accuracy = None
    if len(held):
        probs = classifier.predict_proba_features(_features_of(layout, held, sr))
        pred = np.array(EMOTIONS)[probs.argmax(axis=1)]
        accuracy = float(np.mean(pred == held["emotion"].to_numpy()))
    version = classifier_version(corpus_root)
    meta = {
        "version": version,
        "feature_version": FEATURE_VERSION,
        "manifest_hash": manifest_hash(layout.manifest),
        "train_clips": len(train),
        "held_out_clips": len(held),
        "held_out_accuracy": accuracy,
        "sample_rate": sr,
    }
    logger.info("emotion classifier %s: held-out accuracy %s", version, accuracy)
    classifier.save(layout.root / "evaluators" / "emotion" / version, meta)
    return classifier


def load_or_train(corpus_root: str | Path) -> EmotionClassifier:
    """The corpus's current classifier, trained on first use."""
    directory = CorpusLayout(Path(corpus_root)).root / "evaluators" / "emotion"
    path = directory / classifier_version(corpus_root)
    if (path / "model.json").is_file():
        return EmotionClassifier.load(path)
    return train_emotion_classifier(corpus_root)
