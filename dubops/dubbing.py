"""The dubbing model at inference: silent clip + script + timbre prompt -> dubbed speech.

:class:`DubbingPipeline` is the one inference object the CLI, the registry's
pyfunc and the servers wrap (STYLE.md 4). Loaded from a bundle
(:mod:`dubops.registry.bundle`), it runs DeepDubber's two stages with
Authentic-Dubber's retrieval between them:

1. the reasoner reads the clip and the script and concludes the scene type and
   the voice (an unparsable answer gets the reasoner's documented fallback,
   counted in :attr:`DubbingPipeline.fallbacks`);
2. a graph-stage generator needs the clip's footage: the bundle's scene, face
   and text extractors embed the clip (a new video is in no library), and those
   vectors query the footage library the bundle was trained with;
3. the speech generator speaks the script in the prompt's voice, fitted to the
   video slot, conditioned on video, conclusion and footage.

The library is checked against the version the bundle records: a rebuilt
library retrieves other footage than the graph was trained on, so another
version is refused, not merely warned about.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.config import AudioConfig, DubOpsConfig
    from dubops.registry.bundle import BundleInfo

logger = logging.getLogger(__name__)

QUERY_MODALITIES = ("scene", "face", "text")


@dataclass
class DubResult:
    """One dubbed clip: the speech, what the reasoner concluded, and where time went.

    ``seconds`` has ``read`` (decode video and prompt), ``reason``, ``embed``
    (extractors), ``retrieve`` (library), ``speech`` (sampling + vocoder) and ``total``.
    ``footage`` lists, per query modality, the retrieved clips with their similarity.
    """

    wave: np.ndarray
    sample_rate: int
    reasoning_text: str
    conclusion: dict[str, str]
    parse_ok: bool
    fallback: bool
    parse_error: str | None
    seconds: dict[str, float]
    footage: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return len(self.wave) / self.sample_rate

    def to_json(self) -> dict[str, Any]:
        """Everything but the wave, JSON-ready."""
        data = {k: v for k, v in asdict(self).items() if k != "wave"}
        data["audio_seconds"] = round(self.duration, 4)
        return data


@dataclass(frozen=True)
class DubRequest:
    """One clip to dub: paths and lines; ``clip_id`` names it (and excludes it from retrieval)."""

    video_path: Path
    script: str
    prompt_path: Path
    react: str = ""
    clip_id: str | None = None


def corpus_request(data_dir: str | Path, clip_id: str) -> tuple[DubRequest, dict[str, Any]]:
    """The request a corpus clip makes (its video, script, react line and timbre prompt).

    Returns:
        ``(request, manifest row as a dict)``.
    """
    import pandas as pd

    from dubops.data.layout import CorpusLayout

    layout = CorpusLayout(Path(data_dir))
    if not layout.manifest.is_file():
        raise InputError(f"--data {data_dir}: no manifest.parquet; run `dubops data synth` first")
    manifest = pd.read_parquet(layout.manifest)
    rows = manifest[manifest["clip_id"] == clip_id]
    if rows.empty:
        held_out = manifest[manifest["split"].isin(["test_s2", "test_s1"])]["clip_id"].head(3)
        raise InputError(
            f"--clip {clip_id!r} is not in {layout.manifest}; held-out clips are e.g. "
            f"{list(held_out)}"
        )
    row = rows.iloc[0].to_dict()
    request = DubRequest(
        video_path=layout.resolve(row["video_path"]),
        script=str(row["script"]),
        prompt_path=layout.resolve(row["prompt_audio_path"]),
        react=str(row.get("react") or ""),
        clip_id=clip_id,
    )
    return request, row


class DubbingPipeline:
    """Reasoner + extractors + footage retrieval + speech generator, from one bundle."""

    def __init__(
        self,
        bundle: BundleInfo,
        reasoner: Any,
        generator: Any,
        extractors: dict[str, Any] | None,
    ) -> None:
        self.bundle = bundle
        self.reasoner = reasoner
        self.generator = generator
        self.extractors = extractors  # None when the generator has no emotion graph

    @classmethod
    def from_bundle(
        cls,
        bundle_dir: str | Path,
        library_dir: str | Path | None = None,
        backend: str = "numpy",
        audio: AudioConfig | None = None,
    ) -> DubbingPipeline:
        """Load every part of a bundle (and, for a graph model, its footage library).

        Args:
            bundle_dir: a folder written by :func:`dubops.registry.bundle.assemble_bundle`.
            library_dir: the footage library; default: the one the bundle was made with.
            backend: the library's search backend (numpy, milvus, feast).
            audio: the mel front end (default: F5-TTS's, what every preset uses).

        Raises:
            BundleError: the bundle is incomplete, or a file changed since it was
                assembled (its hash in ``bundle.json`` no longer matches).
            LibraryError: the library is missing or has another version than the
                bundle records (the message names ``dubops library build``).
        """
        from dubops.config import AudioConfig
        from dubops.emotion.footage_vectors import extractor_class
        from dubops.reasoning.inference import Reasoner
        from dubops.registry.bundle import BundleError, changed_files, read_bundle
        from dubops.speech.generator import SpeechGenerator, load_dubbing_model

        info = read_bundle(bundle_dir)
        changed = changed_files(info)
        if changed:
            raise BundleError(
                f"bundle {info.root}: {changed} changed since it was assembled (hashes in "
                "bundle.json); assemble it again, or load the registered version afresh"
            )
        audio = audio or AudioConfig()
        reasoner = Reasoner.from_dir(info.part("reasoner"))
        model, vocab, speech = load_dubbing_model(info.part("speech"))
        if not info.needs_library:
            generator = SpeechGenerator(model, vocab, speech, audio)
            return cls(info, reasoner, generator, None)
        library = open_bundle_library(info, library_dir, backend)
        folder = info.part("extractors")
        extractors = {name: extractor_class(name).load(folder) for name in QUERY_MODALITIES}
        generator = SpeechGenerator(
            model, vocab, speech, audio, library=library, library_k=info.library_k
        )
        return cls(info, reasoner, generator, extractors)

    @classmethod
    def from_registry(
        cls,
        config: DubOpsConfig,
        model_uri: str = "models:/dubbing@champion",
        library_dir: str | Path | None = None,
    ) -> DubbingPipeline:
        """The pipeline a registered version serves (loaded as MLflow's pyfunc loads it)."""
        from dubops.registry.loading import load_pipeline

        return load_pipeline(config, model_uri, library_dir)[0]

    @property
    def sample_rate(self) -> int:
        return int(self.generator.audio.sample_rate)

    @property
    def fallbacks(self) -> int:
        """How many answers so far could not be parsed and got the fallback conclusion."""
        return int(self.reasoner.fallbacks)

    def close(self) -> None:
        if self.generator.library is not None:
            self.generator.library.close()

    def dub_request(
        self, request: DubRequest, seed: int = 0, on_stage: Callable[[str], None] | None = None
    ) -> DubResult:
        return self.dub(
            request.video_path,
            request.script,
            request.prompt_path,
            react=request.react,
            clip_id=request.clip_id,
            seed=seed,
            on_stage=on_stage,
        )

    def dub(
        self,
        video_path: str | Path,
        script: str,
        prompt_wav_path: str | Path,
        react: str | None = None,
        clip_id: str | None = None,
        seed: int = 0,
        on_stage: Callable[[str], None] | None = None,
    ) -> DubResult:
        """Dub one silent clip.

        Args:
            video_path: the silent clip (mp4); its length is the speech's length.
            script: the line to speak.
            prompt_wav_path: a recording of the target voice (0.5 s or more).
            react: the preceding line (the text-react emotion cue); empty when unknown.
            clip_id: the clip's name; when it is footage in the library, it is kept
                out of its own retrieval.
            seed: the sampler's noise seed.
            on_stage: called with each stage's name (the keys of ``seconds``) as it
                starts, for a progress display.

        Raises:
            ValueError / SpeechInputError: a missing or unreadable file, an empty
                script, a prompt too short or a slot too short for the script.
        """
        from dubops.audio import read_wav
        from dubops.video import read_video

        if not script or not script.strip():
            raise InputError("script: it is empty; give the line the clip's speaker says")
        for name, path in (("video_path", video_path), ("prompt_path", prompt_wav_path)):
            if not Path(path).is_file():
                raise InputError(f"{name}: {path} does not exist")
        stage = on_stage or (lambda _name: None)
        seconds: dict[str, float] = {}
        began = tick = time.perf_counter()
        stage("read")
        frames, fps = read_video(video_path)
        prompt, rate = read_wav(prompt_wav_path)
        seconds["read"], tick = _lap(tick)
        stage("reason")

        answer = self.reasoner.reason([frames], [script])[0]
        conclusion = self.reasoner.conclusion_for(answer)
        if not answer.parse_ok:
            logger.warning("reasoner answer unparsable (%s): fallback conclusion", answer.error)
        seconds["reason"], tick = _lap(tick)

        footage_input, hits = None, {}
        name = clip_id or Path(video_path).stem
        if self.extractors is not None:
            stage("embed")
            vectors = self.embed_clip(name, frames, script, react or "")
            seconds["embed"], tick = _lap(tick)
            stage("retrieve")
            tensors, retrieved = self.generator.footage_from_vectors(
                name, vectors, exclude_clips=[clip_id] if clip_id else None
            )
            footage_input = tensors.batch([name])
            hits = {
                m: [
                    {"clip_id": c, "similarity": round(float(s), 4), "emotion": e}
                    for c, s, e in zip(h.clip_ids, h.similarities, h.emotions, strict=True)
                ]
                for m, h in retrieved.modalities.items()
            }
            seconds["retrieve"], tick = _lap(tick)
        stage("speech")

        wave = self.generator.generate(
            script,
            prompt,
            rate,
            video_frames=frames,
            conclusion=asdict(conclusion),
            footage=footage_input,
            seed=seed,
            fps=fps,
        )
        seconds["speech"], tick = _lap(tick)
        seconds["total"] = round(tick - began, 4)
        return DubResult(
            wave=wave,
            sample_rate=self.sample_rate,
            reasoning_text=answer.text,
            conclusion=asdict(conclusion),
            parse_ok=answer.parse_ok,
            fallback=not answer.parse_ok,
            parse_error=answer.error,
            seconds=seconds,
            footage=hits,
        )

    def embed_clip(self, clip_id: str, frames: np.ndarray, script: str, react: str) -> dict:
        """The clip's scene, face and text vectors ``(d,)`` from the bundle's extractors."""
        from dubops.emotion.extractors.base import ClipInputs

        if self.extractors is None:
            raise ValueError("this bundle's generator has no emotion graph: it embeds no footage")
        inputs = ClipInputs(
            clip_id=clip_id,
            frames=frames,
            script=script,
            react=react,
            sample_rate=self.sample_rate,
        )
        return {name: ex.embed([inputs])[0] for name, ex in self.extractors.items()}


def open_bundle_library(
    info: BundleInfo, library_dir: str | Path | None = None, backend: str = "numpy"
) -> Any:
    """The footage library a bundle expects, opened; refuses any other version."""
    from dubops.feature_store.layout import BUILD_HINT, LibraryError
    from dubops.feature_store.retrieval import FootageLibrary

    folder = Path(library_dir or info.raw.get("library_dir", ""))
    try:
        library = FootageLibrary.open(folder, backend=backend)
    except LibraryError as exc:
        raise LibraryError(
            f"{exc}; or give the library this model was trained with (version "
            f"{info.library_version}): --library DIR, or the model config's library_dir"
        ) from None
    if library.info.version != info.library_version:
        library.close()
        raise LibraryError(
            f"footage library {folder} has version {library.info.version}, but the dubbing "
            f"bundle {info.root} was trained with version {info.library_version}; pass that "
            f"library (--library DIR) or {BUILD_HINT.format(path=folder)} from the corpus of "
            f"data version {info.data_version or '?'} with --extractors {info.part('extractors')}"
        )
    return library


def mux_dub(
    video_path: str | Path, wave: np.ndarray, sample_rate: int, out_path: str | Path
) -> Path:
    """The silent video with the dubbed speech as its AAC track, written atomically.

    The video stream is copied, not re-encoded (:func:`dubops.video.mux_audio`);
    the wav goes beside the mp4 (``<out>.wav``), which is also what is muxed.
    """
    from dubops.audio import write_wav
    from dubops.video import mux_audio

    out = Path(out_path)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"--out {out}: the dubbed video must be an .mp4 file")
    wav = out.with_suffix(".wav")
    write_wav(wav, wave, sample_rate)
    mux_audio(video_path, wav, out)
    return out


def _lap(tick: float) -> tuple[float, float]:
    now = time.perf_counter()
    return round(now - tick, 4), now
