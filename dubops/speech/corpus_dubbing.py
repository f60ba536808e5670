"""Dub every clip of some corpus splits with a trained generator (for ``dubops eval``).

Each clip is dubbed as a user would: its script, its silent video, its timbre
prompt (another utterance of the speaker) and a conclusion (the ground-truth
labels, or a reasoner's JSONL); the script is phonemized at inference, not
read from the manifest. Output: ``<out>/<clip_id>.wav``, written atomically;
existing files are skipped, so an interrupted run resumes. A graph-stage
generator also gets each clip's footage: its basic vectors from the library
and its retrieval, in one batched query for every clip still to dub.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from dubops.data.datasets import load_manifest
from dubops.data.layout import CorpusLayout
from dubops.speech.generator import Ablation, SpeechGenerator


def dub_corpus(
    generator: SpeechGenerator,
    data_dir: str | Path,
    splits: Sequence[str],
    out_dir: str | Path,
    ablation: Ablation = Ablation(),
    max_clips: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write one wav per clip; returns the paths (existing ones included)."""
    from dubops.audio import read_wav, write_wav
    from dubops.video import read_video

    layout = CorpusLayout(Path(data_dir))
    manifest = load_manifest(data_dir, list(splits))
    if max_clips is not None:
        manifest = manifest.head(max_clips)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rate = generator.audio.sample_rate
    todo = [c for c in manifest["clip_id"] if not (out / f"{c}.wav").is_file()]
    footage = generator.footage_for(todo) if generator.needs_footage and todo else None
    paths = []
    for i, row in enumerate(manifest.itertuples()):
        path = out / f"{row.clip_id}.wav"
        if not path.is_file():
            prompt, _ = read_wav(layout.resolve(row.prompt_audio_path), rate)
            frames, fps = read_video(layout.resolve(row.video_path))
            conclusion = {
                "scene_type": row.scene_type,
                "gender": row.gender,
                "age": row.age,
                "emotion": row.emotion,
            }
            wave = generator.generate(
                row.script,
                prompt,
                rate,
                video_frames=frames,
                conclusion=conclusion,
                ablation=ablation,
                seed=seed,
                fps=fps,
                footage=None if footage is None else footage.batch([row.clip_id]),
            )
            write_wav(path, wave, rate)
        paths.append(path)
        if progress is not None:
            progress(i + 1, len(manifest))
    return paths
