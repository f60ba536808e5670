"""The synthetic dubbing corpus: deterministic from its seed, every task learnable.

No corpus can be downloaded here, so we make one. Each clip joins espeak-ng
speech (speaker timbre from voice + base prosody, emotion as prosody deltas),
a cartoon video in which the talking character's mouth follows the speech
envelope frame by frame, a script whose words mostly agree with the emotion,
a react line, a timbre prompt of the same speaker, phoneme durations and a
chain-of-thought answer with rejected variants.

Generation is planned in the parent (all random choices that couple clips:
speaker, emotion, scene balance, splits) and executed per clip in a process
pool from a per-clip seed, so the result does not depend on the worker count.
Finished clips are recorded under ``<corpus>/.rows/``: an interrupted run
resumes where it stopped, and a finished corpus with the same settings is not
rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dubops.config import DubOpsConfig
from dubops.data.layout import CorpusLayout
from dubops.data.schema import AGES, EMOTIONS, GENDERS, SCENE_TYPES
from dubops.data.scripts import other_emotion

logger = logging.getLogger(__name__)

CORPUS_FORMAT_VERSION = 4
ROWS_DIR = ".rows"
# Imported once in the fork server so each per-clip process starts warm.
_WORKER_MODULES = [
    "dubops.data.synthetic",
    "dubops.audio",
    "dubops.video",
    "dubops.data.cartoon",
    "dubops.speech.espeak",
    "dubops.data.cot",
    "dubops.data.scripts",
    "dubops.data.speakers",
    "scipy.signal",
    "soundfile",
    "av",
    "PIL.Image",
]


@dataclass(frozen=True)
class PersonSpec:
    """A character on screen (mirrors cartoon.Character, kept plain for pickling)."""

    gender: str
    age: str
    emotion: str
    talking: bool


@dataclass(frozen=True)
class ClipSpec:
    """Everything decided in the parent about one clip."""

    clip_id: str
    index: int
    speaker_id: str
    emotion: str
    scene_type: str
    people: tuple[PersonSpec, ...]
    talker_index: int
    split: str
    scene_emotion: str  # what the set's colours show: the emotion, or another (the agreement)


ProgressFn = Callable[[int, int], None]


def _balanced(values: list[str] | tuple[str, ...], n: int, rng: np.random.Generator) -> list[str]:
    """``n`` draws that use every value equally often (up to one), shuffled."""
    reps = int(np.ceil(n / len(values)))
    pool = [v for _ in range(reps) for v in values][:n]
    rng.shuffle(pool)
    return pool


def _weighted_pool(values: tuple[str, ...], weights: dict[str, float], setting: str) -> list[str]:
    """Each value as often as its weight says (four draws per unit of weight)."""
    unknown = set(weights) - set(values)
    if unknown:
        raise ValueError(f"synth.{setting} has unknown values {sorted(unknown)}; use {values}")
    pool = [v for v in values for _ in range(max(0, round(4 * weights.get(v, 0))))]
    if not pool:
        raise ValueError(f"synth.{setting} gives every value weight 0; give one a weight > 0")
    return pool


def _pick_unseen(speakers: list, count: int, rng: np.random.Generator) -> set[str]:
    """Setting-2 speakers, alternating genders so both appear among the unseen."""
    by_gender = {g: [s.speaker_id for s in speakers if s.gender == g] for g in GENDERS}
    for ids in by_gender.values():
        rng.shuffle(ids)
    unseen: list[str] = []
    order = list(GENDERS)
    i = 0
    while len(unseen) < count:
        ids = by_gender[order[i % len(order)]]
        if ids:
            unseen.append(ids.pop())
        i += 1
    return set(unseen)


def plan_corpus(config: DubOpsConfig) -> list[ClipSpec]:
    """Decide every clip's speaker, emotion, scene, characters and split."""
    from dubops.data.speakers import SPEAKERS, speaker_by_id

    synth = config.synth
    rng = np.random.default_rng([synth.seed, 1])
    speakers = list(SPEAKERS[: synth.speakers])
    unseen = _pick_unseen(speakers, synth.unseen_speakers, rng)
    scene_pool = _weighted_pool(SCENE_TYPES, synth.scene_weights, "scene_weights")
    n = synth.clips
    spk = _balanced([s.speaker_id for s in speakers], n, rng)
    # The default (None) keeps every emotion equally often, drawn as before.
    emotions = synth.emotion_weights
    emo = _balanced(
        EMOTIONS if emotions is None else _weighted_pool(EMOTIONS, emotions, "emotion_weights"),
        n,
        rng,
    )
    scene = _balanced(scene_pool, n, rng)
    sets = draw_scene_emotions(emo, synth.scene_emotion_agreement, synth.seed)
    specs = []
    for i in range(n):
        speaker = speaker_by_id(spk[i])
        emotion, scene_type = emo[i], scene[i]
        people: list[PersonSpec] = []
        talker = -1
        if scene_type == "monologue":
            people = [PersonSpec(speaker.gender, speaker.age, emotion, True)]
            talker = 0
        else:
            count = int(rng.integers(2, 4)) if scene_type == "dialogue" else int(rng.integers(0, 3))
            talker = int(rng.integers(0, count)) if scene_type == "dialogue" else -1
            for j in range(count):
                if j == talker:
                    people.append(PersonSpec(speaker.gender, speaker.age, emotion, True))
                    continue
                # Listeners mostly share the mood of the scene, not always.
                mood = emotion if rng.random() < 0.6 else str(rng.choice(EMOTIONS))
                people.append(
                    PersonSpec(str(rng.choice(GENDERS)), str(rng.choice(AGES)), mood, False)
                )
        if speaker.speaker_id in unseen:
            split = "test_s2"
        else:
            u = rng.random()
            split = (
                "test_s1"
                if u < synth.test_fraction
                else "val"
                if u < synth.test_fraction + synth.val_fraction
                else "train"
            )
        specs.append(
            ClipSpec(
                clip_id=f"syn{synth.seed:02d}_{i:05d}",
                index=i,
                speaker_id=speaker.speaker_id,
                emotion=emotion,
                scene_type=scene_type,
                people=tuple(people),
                talker_index=talker,
                split=split,
                scene_emotion=sets[i],
            )
        )
    return specs


def draw_scene_emotions(emotions: list[str], agreement: float, seed: int) -> list[str]:
    """What each clip's set shows: its emotion with probability ``agreement``, else another.

    Real sets hint at the mood; they do not name it. The draws come from their own
    stream and are made for every clip whatever the agreement, so the rest of the
    corpus is the same at any agreement and a lower one only changes more sets.
    """
    rng = np.random.default_rng([seed, 3])
    shown = []
    for emotion in emotions:
        agrees = rng.random() < agreement
        other = other_emotion(emotion, rng)
        shown.append(emotion if agrees else other)
    return shown


def corpus_fingerprint(config: DubOpsConfig) -> str:
    """Hash of everything that changes the corpus's content."""
    blob = json.dumps(
        {
            "version": CORPUS_FORMAT_VERSION,
            "synth": config.synth.model_dump(mode="json", exclude={"workers"}),
            "audio": config.audio.model_dump(mode="json"),
            "video": config.video.model_dump(mode="json"),
        },
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _phoneme_frames(
    starts: list[int], names: list[str], src_sr: int, sample_rate: int, hop: int, mel_frames: int
) -> tuple[list[str], list[int]]:
    """Per-phoneme durations in mel frames from espeak's sample positions.

    Pauses become ``_``; leading silence before the first phoneme is a pause;
    the last phoneme runs to the end, so durations sum to ``mel_frames``.
    """
    names = ["_" if n.startswith("_") else n for n in names]
    bounds = [round(s * sample_rate / src_sr / hop) for s in starts]
    if not names or bounds[0] > 0:
        names = ["_", *names]
        bounds = [0, *bounds]
    bounds = [min(max(b, 0), mel_frames) for b in bounds] + [mel_frames]
    bounds = list(np.maximum.accumulate(bounds))
    frames = [int(b - a) for a, b in itertools.pairwise(bounds)]
    # Merge consecutive pauses so the sequence reads cleanly.
    out_n: list[str] = []
    out_f: list[int] = []
    for name, f in zip(names, frames, strict=True):
        if name == "_" and out_n and out_n[-1] == "_":
            out_f[-1] += f
        else:
            out_n.append(name)
            out_f.append(f)
    return out_n, out_f


def _speak(text: str, voice: str, prosody, config: DubOpsConfig, seed: int = 0):
    """espeak -> 24 kHz float wave + phonemes + frame durations."""
    from dubops.audio import num_mel_frames, resample
    from dubops.speech.espeak import EspeakSynthesizer

    utt = EspeakSynthesizer.shared().synthesize(text, voice, prosody, seed=seed)
    sr = config.audio.sample_rate
    wave = resample(utt.samples.astype(np.float32) / 32768.0, utt.sample_rate, sr)
    mel_frames = num_mel_frames(len(wave), config.audio.hop_length)
    names, frames = _phoneme_frames(
        utt.starts, utt.phonemes, utt.sample_rate, sr, config.audio.hop_length, mel_frames
    )
    return wave, names, frames, mel_frames


def _mouth_track(wave: np.ndarray, sample_rate: int, fps: int, n_frames: int) -> np.ndarray:
    """The speech envelope per video frame, scaled to [0, 1] for the talker's mouth."""
    from dubops.audio import speech_envelope

    env = speech_envelope(wave, sample_rate, fps)[:n_frames]
    env = np.pad(env, (0, max(0, n_frames - len(env))))
    peak = float(env.max()) or 1.0
    return np.clip(env / peak, 0.0, 1.0) ** 0.7


def make_clip(spec: ClipSpec, root: Path, config: DubOpsConfig) -> dict:
    """Generate one clip's media and return its manifest row (runs in a worker)."""
    from dubops.audio import write_wav
    from dubops.data import cot, scripts
    from dubops.data.cartoon import Character, render_clip
    from dubops.data.speakers import emotion_prosody, speaker_by_id
    from dubops.video import write_video

    layout = CorpusLayout(root)
    rng = np.random.default_rng([config.synth.seed, 2, spec.index])
    speaker = speaker_by_id(spec.speaker_id)
    sr, fps = config.audio.sample_rate, config.video.fps
    agreement = config.synth.emotion_word_agreement

    script, _ = scripts.make_script(spec.emotion, agreement, rng)
    react = scripts.make_react(spec.emotion, agreement, rng)
    wave, phonemes, frames, mel_frames = _speak(
        script, speaker.voice, emotion_prosody(speaker, spec.emotion, rng), config, seed=spec.index
    )
    # The timbre prompt: another sentence of the same speaker, in a calm voice.
    prompt_text = scripts.make_prompt_text(rng)
    p_wave, p_phonemes, p_frames, _ = _speak(
        prompt_text,
        speaker.voice,
        emotion_prosody(speaker, "neutral", rng),
        config,
        seed=spec.index + 1_000_003,
    )

    audio_seconds = len(wave) / sr
    n_video = int(np.ceil(audio_seconds * fps))
    mouth = _mouth_track(wave, sr, fps, n_video)
    characters = [Character(p.gender, p.age, p.emotion, p.talking) for p in spec.people]
    video = render_clip(characters, spec.scene_emotion, mouth, config.video.size, rng)

    write_wav(layout.resolve(layout.audio_rel(spec.clip_id)), wave, sr)
    write_wav(layout.resolve(layout.prompt_rel(spec.clip_id)), p_wave, sr)
    write_video(layout.resolve(layout.video_rel(spec.clip_id)), video, fps, crf=config.video.crf)

    on_screen = [cot.OnScreen(p.gender, p.age, p.emotion, p.talking) for p in spec.people]
    labels = (spec.scene_type, speaker.gender, speaker.age, spec.emotion)
    return {
        "clip_id": spec.clip_id,
        "split": spec.split,
        "speaker": speaker.speaker_id,
        "gender": speaker.gender,
        "age": speaker.age,
        "emotion": spec.emotion,
        "scene_type": spec.scene_type,
        "num_people": len(spec.people),
        "talker_index": spec.talker_index,
        "script": script,
        "react": react,
        "phonemes": phonemes,
        "phoneme_frames": frames,
        "mel_frames": mel_frames,
        "audio_path": layout.audio_rel(spec.clip_id),
        "audio_seconds": round(audio_seconds, 4),
        "video_path": layout.video_rel(spec.clip_id),
        "video_seconds": round(n_video / fps, 4),
        "video_frames": n_video,
        "prompt_audio_path": layout.prompt_rel(spec.clip_id),
        "prompt_text": prompt_text,
        "prompt_phonemes": p_phonemes,
        "prompt_phoneme_frames": p_frames,
        "cot": cot.write_cot(on_screen, *labels, spec.scene_emotion, rng),
        "rejected": cot.write_rejected(on_screen, *labels, spec.scene_emotion, rng),
        "source": "synthetic",
    }


def _make_and_record(spec: ClipSpec, root: Path, config: DubOpsConfig, fingerprint: str) -> str:
    from dubops.fileio import write_json

    row = make_clip(spec, root, config)
    write_json(root / ROWS_DIR / f"{spec.clip_id}.json", {"fingerprint": fingerprint, "row": row})
    return spec.clip_id


def _load_done(root: Path, specs: list[ClipSpec], fingerprint: str) -> dict[str, dict]:
    done: dict[str, dict] = {}
    for spec in specs:
        path = root / ROWS_DIR / f"{spec.clip_id}.json"
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        if record.get("fingerprint") == fingerprint:
            done[spec.clip_id] = record["row"]
    return done


def write_manifest(root: Path, rows: list[dict]) -> Path:
    """Write the Parquet manifest atomically."""
    import pandas as pd

    from dubops.fileio import atomic_path

    layout = CorpusLayout(root)
    frame = pd.DataFrame(rows)
    with atomic_path(layout.manifest) as tmp:
        frame.to_parquet(tmp, index=False)
    return layout.manifest


def generate_corpus(
    config: DubOpsConfig,
    out: str | Path,
    workers: int | None = None,
    progress: ProgressFn | None = None,
) -> dict:
    """Generate (or resume, or reuse) the synthetic corpus in ``out``.

    Args:
        config: the whole configuration; ``config.synth`` decides the corpus.
        out: the corpus folder.
        workers: processes (defaults to ``config.synth.workers``).
        progress: called with ``(done, total)`` as clips finish.

    Returns:
        The corpus info written to ``corpus.json`` (counts, timings, fingerprint),
        with ``"reused": True`` when nothing had to be generated.
    """
    from dubops.fileio import write_json

    root = Path(out)
    layout = CorpusLayout(root)
    fingerprint = corpus_fingerprint(config)
    if layout.info.is_file() and layout.manifest.is_file():
        info = json.loads(layout.info.read_text())
        if info.get("fingerprint") == fingerprint:
            logger.info("corpus in %s is up to date (fingerprint %s)", root, fingerprint)
            if progress:
                progress(info["clips"], info["clips"])
            return {**info, "reused": True}
    layout.make_dirs()
    specs = plan_corpus(config)
    done = _load_done(root, specs, fingerprint)
    todo = [s for s in specs if s.clip_id not in done]
    total = len(specs)
    logger.info("%d clips to generate, %d already done", len(todo), len(done))
    if progress:
        progress(len(done), total)
    start = time.perf_counter()
    n_workers = max(1, workers or config.synth.workers)
    if todo:
        # espeak-ng keeps wave-generator state from one utterance to the next, so
        # a clip's audio would depend on which clips its worker made before. Each
        # clip therefore runs in a fresh process from a clean fork server
        # (maxtasksperchild=1): the corpus is the same for any worker count.
        # A failing or dying worker ends the run with its error (dubops.pools), never a hang.
        from dubops.pools import map_unordered

        job = functools.partial(_make_and_record, root=root, config=config, fingerprint=fingerprint)
        results = map_unordered(
            job, todo, n_workers, max_tasks_per_child=1, preload=_WORKER_MODULES
        )
        for finished, _ in enumerate(results, start=1):
            if progress:
                progress(len(done) + finished, total)
    elapsed = time.perf_counter() - start
    rows = list(_load_done(root, specs, fingerprint).values())
    rows.sort(key=lambda r: r["clip_id"])
    write_manifest(root, rows)
    info = {
        "format_version": CORPUS_FORMAT_VERSION,
        "source": "synthetic",
        "fingerprint": fingerprint,
        "clips": len(rows),
        "generated_now": len(todo),
        "seconds": round(elapsed, 2),
        "clips_per_second": round(len(todo) / elapsed, 3) if todo and elapsed > 0 else None,
        "workers": n_workers,
        "config": {
            "synth": config.synth.model_dump(mode="json"),
            "audio": config.audio.model_dump(mode="json"),
            "video": config.video.model_dump(mode="json"),
        },
        "counts": {
            key: dict(Counter(r[key] for r in rows))
            for key in ("split", "emotion", "scene_type", "speaker", "age", "gender")
        },
        "audio_hours": round(sum(r["audio_seconds"] for r in rows) / 3600, 4),
    }
    write_json(layout.info, info)
    return {**info, "reused": False}
