"""The dubbing model at inference: silent clip + script + timbre prompt -> dubbed speech.

:class:`DubbingPipeline` is the only way DubOps dubs: the CLI (``dub``,
``dub-clip``, ``speak``), the pipeline's evaluate step, the registry's pyfunc
and the servers all call :meth:`~DubbingPipeline.dub` or
:meth:`~DubbingPipeline.dub_many`. It runs DeepDubber's two stages with
Authentic-Dubber's retrieval between them, one named step each, in order:

1. ``read``: decode the video and the timbre prompt;
2. ``reason``: the reasoner reads the clip and the script and concludes the
   scene type and the voice (overrides win field by field; an unparsable
   answer gets the documented fallback, counted in :attr:`fallbacks`);
3. ``embed``: a graph model's scene, face and text extractors embed the clip
   (a new video is in no library);
4. ``retrieve``: those vectors query the footage library the graph was
   trained with;
5. ``generate``: the speech generator fits the script to the slot and
   samples, conditioned on video, conclusion and footage; a batch of clips is
   one reasoner call and one sampler call;
6. ``vocode``: mel to waveform;
7. ``mux``: the video with the dub as its audio track, when asked.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dubops.cancellation import raise_if_stopped
from dubops.errors import InputError
from dubops.inference.conclusions import ClipConclusion, merge_conclusion
from dubops.inference.request import CONCLUSION_FIELDS, DubRequest
from dubops.inference.result import DubResult

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.inference.media import ClipMedia
    from dubops.inference.retrieval import FootageRetriever, Retrieval

logger = logging.getLogger(__name__)


class DubbingPipeline:
    """Reasoner + extractors + footage retrieval + speech generator."""

    def __init__(
        self,
        generator: Any,
        reasoner: Any = None,
        retriever: FootageRetriever | None = None,
        bundle: Any = None,
        model_version: str | None = None,
        reason_batch_size: int = 8,
        max_new_tokens: int | None = None,
    ) -> None:
        self.generator = generator
        self.reasoner = reasoner  # None: conclusions come from overrides only
        self.retriever = retriever  # None when the generator has no emotion graph
        self.bundle = bundle
        self.model_version = model_version
        self.reason_batch_size = reason_batch_size
        self.max_new_tokens = max_new_tokens
        self.fallbacks = 0

    # -- loading (dubops.inference.loading does the work) -----------------------------

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path, **options: Any) -> DubbingPipeline:
        """Every part of a bundle, checked; ``options``: ``library_dir``, ``backend``,
        ``audio``, ``expected_hash``, ``model_version``
        (:func:`dubops.inference.loading.load_bundle`)."""
        from dubops.inference.loading import load_bundle

        return load_bundle(cls, bundle_dir, **options)

    @classmethod
    def from_parts(cls, speech_dir: str | Path, **parts: Any) -> DubbingPipeline:
        """Training outputs (see :func:`dubops.inference.loading.load_parts`)."""
        from dubops.inference.loading import load_parts

        return load_parts(cls, speech_dir, **parts)

    @classmethod
    def from_registry(
        cls,
        config: DubOpsConfig,
        model_uri: str = "models:/dubbing@champion",
        library_dir: str | Path | None = None,
    ) -> DubbingPipeline:
        """The pipeline a registered version serves (loaded as MLflow's pyfunc loads it)."""
        from dubops.inference.loading import load_pipeline

        return load_pipeline(config, model_uri, library_dir)[0]

    @property
    def sample_rate(self) -> int:
        return int(self.generator.audio.sample_rate)

    @property
    def needs_footage(self) -> bool:
        return bool(self.generator.needs_footage)

    def close(self) -> None:
        if self.retriever is not None:
            self.retriever.close()

    def __enter__(self) -> DubbingPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dubbing ---------------------------------------------------------------------

    def dub(
        self, request: DubRequest | dict[str, Any], on_stage: Callable[[str], None] | None = None
    ) -> DubResult:
        """Dub one clip (a batch of one: :meth:`dub_many`)."""
        return self.dub_many([request], on_stage=on_stage)[0]

    def dub_many(
        self,
        requests: Sequence[DubRequest | dict[str, Any]],
        on_stage: Callable[[str], None] | None = None,
        ablation: Any = None,
    ) -> list[DubResult]:
        """Dub several clips: one reasoner batch, one extractor and library call per
        modality, one sampler call (per sampler setting) for all of them.

        Args:
            requests: :class:`DubRequest` objects or their fields as dicts.
            on_stage: called with each step's name as it starts (a progress display).
            ablation: a :class:`dubops.speech.generator.Ablation` (evaluation only).

        Raises:
            InputError / SpeechInputError: a bad request, naming its field (and, in a
                batch of several, which request).
        """
        reqs = [r if isinstance(r, DubRequest) else DubRequest(**r) for r in requests]
        if not reqs:
            return []
        timer = _StageTimer(on_stage)
        seen = self._analyse(reqs, timer)
        with timer("generate"):
            plans = self.plan(reqs, seen.media, seen.conclusions, seen.retrieval, ablation)
            mels = self.generator.sample(plans)
        with timer("vocode"):
            waves = self.vocode(mels)
        mp4s: list[bytes | None] = [None] * len(reqs)
        if any(r.mp4 for r in reqs):
            with timer("mux"):
                mp4s = self.mux(reqs, waves)
        # Monitoring's record of each clip, timed as its own share (not a named step).
        tick = time.perf_counter()
        features = [seen.features(i) for i in range(len(reqs))]
        monitor_share = round((time.perf_counter() - tick) / len(reqs), 4)
        seconds = timer.shares(len(reqs)) | {"features": monitor_share}
        return [
            DubResult(
                name=req.name,
                wave=wave,
                sample_rate=self.sample_rate,
                reasoning_text=c.reasoning_text,
                conclusion=c.values,
                conclusion_source=c.sources,
                parse_ok=c.parse_ok,
                parse_error=c.parse_error,
                seconds=dict(seconds),
                batch_size=len(reqs),
                footage=seen.hits(i),
                query_vectors=seen.query_vectors(i),
                features=features[i],
                model_version=self.model_version,
                speaker_id=req.speaker_id,
                seed=req.seed,
                mp4=mp4s[i],
            )
            for i, (req, c, wave) in enumerate(zip(reqs, seen.conclusions, waves, strict=True))
        ]

    def describe(
        self, requests: Sequence[DubRequest | dict[str, Any]]
    ) -> list[tuple[dict[str, Any], dict[str, list[float]]]]:
        """What monitoring records of each clip, without dubbing it: ``(features, query
        vectors)`` per request, from the same read, reason, embed and retrieve steps a dub
        runs (the drift reference is built with it; a dub's result carries the same)."""
        reqs = [r if isinstance(r, DubRequest) else DubRequest(**r) for r in requests]
        seen = self._analyse(reqs, _StageTimer(None))
        return [(seen.features(i), seen.query_vectors(i)) for i in range(len(reqs))]

    def _analyse(self, reqs: list[DubRequest], timer: _StageTimer) -> _Analysis:
        """The steps before generation: read, reason and (a graph model) embed, retrieve."""
        with timer("read"):
            media = self.read_media(reqs)
        with timer("reason"):
            conclusions = self.reason(reqs, media)
        retrieval, vectors = None, [{} for _ in reqs]
        if self.needs_footage:
            with timer("embed"):
                vectors = self.embed(reqs, media)
            with timer("retrieve"):
                retrieval = self.retrieve(reqs, vectors)
        return _Analysis(reqs, media, conclusions, vectors, retrieval)

    # -- the steps -------------------------------------------------------------------

    def read_media(self, requests: Sequence[DubRequest]) -> list[ClipMedia]:
        from dubops.inference.media import read_media

        return [_for_request(i, requests, read_media, r) for i, r in enumerate(requests)]

    def reason(
        self, requests: Sequence[DubRequest], media: Sequence[ClipMedia]
    ) -> list[ClipConclusion]:
        """The reasoner's answers for the clips that need one, merged with the overrides."""
        from dubops.reasoning.inference import FALLBACK_CONCLUSION

        asks = [
            i
            for i, r in enumerate(requests)
            if self.reasoner is not None and len(r.overrides()) < len(CONCLUSION_FIELDS)
        ]
        answers: dict[int, Any] = {}
        if asks:
            results = self.reasoner.reason(
                [media[i].frames for i in asks],
                [requests[i].script for i in asks],
                batch_size=self.reason_batch_size,
                max_new_tokens=self.max_new_tokens,
            )
            answers = dict(zip(asks, results, strict=True))
        out = []
        for i, request in enumerate(requests):
            answer = answers.get(i)
            if answer is not None and not answer.parse_ok:
                self.fallbacks += 1
                logger.warning("%s: reasoner answer unparsable (%s)", request.name, answer.error)
            out.append(merge_conclusion(answer, request.overrides(), FALLBACK_CONCLUSION))
        return out

    def embed(
        self, requests: Sequence[DubRequest], media: Sequence[ClipMedia]
    ) -> list[dict[str, np.ndarray]]:
        """Query vectors: the extractors' (served path) or the library's (oracle_footage)."""
        assert self.retriever is not None
        out: list[dict[str, np.ndarray]] = [{} for _ in requests]
        served = [i for i, r in enumerate(requests) if not r.oracle_footage]
        oracle = [i for i, r in enumerate(requests) if r.oracle_footage]
        if served:
            embedded = self.retriever.embed(
                [requests[i].name for i in served],
                [media[i].frames for i in served],
                [requests[i].script for i in served],
                [requests[i].react for i in served],
                self.sample_rate,
            )
            for i, v in zip(served, embedded, strict=True):
                out[i] = v
        if oracle:
            stored = self.retriever.stored([str(requests[i].clip_id) for i in oracle])
            for i, v in zip(oracle, stored, strict=True):
                out[i] = v
        return out

    def retrieve(
        self, requests: Sequence[DubRequest], vectors: Sequence[dict[str, np.ndarray]]
    ) -> Retrieval:
        """One library query for the batch; a clip never retrieves itself."""
        assert self.retriever is not None
        keys = [str(i) for i in range(len(requests))]  # names may repeat within a batch
        return self.retriever.retrieve(keys, vectors, [r.clip_id for r in requests])

    def plan(
        self,
        requests: Sequence[DubRequest],
        media: Sequence[ClipMedia],
        conclusions: Sequence[ClipConclusion],
        retrieval: Retrieval | None,
        ablation: Any = None,
    ) -> list[Any]:
        """Each clip's sampler input (phonemes, durations, lip alignment, conditions)."""
        from dubops.speech.generator import Ablation

        plans = []
        for i, (req, clip, c) in enumerate(zip(requests, media, conclusions, strict=True)):
            footage = retrieval.tensors.batch([str(i)]) if retrieval is not None else None
            plans.append(
                _for_request(
                    i,
                    requests,
                    self.generator.prepare,
                    req.script,
                    clip.prompt,
                    clip.prompt_rate,
                    video_frames=clip.frames,
                    target_seconds=req.target_seconds,
                    conclusion=c.values,
                    footage=footage,
                    nfe=req.nfe,
                    ablation=ablation or Ablation(),
                    seed=req.seed,
                    fps=clip.fps,
                )
            )
        return plans

    def vocode(self, mels: Sequence[Any]) -> list[np.ndarray]:
        return [self.generator.vocode(mel) for mel in mels]

    def mux(
        self, requests: Sequence[DubRequest], waves: Sequence[np.ndarray]
    ) -> list[bytes | None]:
        """The video with each dub as its AAC track, as mp4 bytes (for requests that ask)."""
        from dubops.inference.mux import mux_to_bytes

        out: list[bytes | None] = []
        with tempfile.TemporaryDirectory(prefix="dubops-mux-") as tmp:
            for i, (req, wave) in enumerate(zip(requests, waves, strict=True)):
                if not req.mp4:
                    out.append(None)
                    continue
                folder = Path(tmp) / str(i)
                folder.mkdir()
                out.append(mux_to_bytes(req, wave, self.sample_rate, folder))
        return out


def _for_request(index: int, requests: Sequence[DubRequest], step: Callable, *args, **kwargs):
    """Run one request's part of a step; in a batch, an error names the request."""
    try:
        return step(*args, **kwargs)
    except (InputError, ValueError) as exc:
        if len(requests) == 1:
            raise
        name = requests[index].name
        raise InputError(f"request {index} ({name}): {exc}") from None


@dataclass
class _Analysis:
    """A batch's decoded media, conclusions, query vectors and retrieval."""

    requests: list[DubRequest]
    media: list[ClipMedia]
    conclusions: list[ClipConclusion]
    vectors: list[dict[str, np.ndarray]]
    retrieval: Retrieval | None

    def hits(self, i: int) -> dict[str, list[dict[str, Any]]]:
        return self.retrieval.hits[i] if self.retrieval is not None else {}

    def query_vectors(self, i: int) -> dict[str, list[float]]:
        return {m: np.asarray(v).round(6).tolist() for m, v in self.vectors[i].items()}

    def features(self, i: int) -> dict[str, Any]:
        from dubops.monitoring.features import clip_features

        req, clip = self.requests[i], self.media[i]
        return clip_features(
            req.script,
            clip.frames.shape,
            clip.fps,
            clip.prompt,
            clip.prompt_rate,
            req.target_seconds,
            self.conclusions[i].values,
            self.hits(i),
        )


class _StageTimer:
    """Wall seconds per named step; announces each step as it starts."""

    def __init__(self, on_stage: Callable[[str], None] | None) -> None:
        self.on_stage = on_stage or (lambda _name: None)
        self.seconds: dict[str, float] = {}
        self.began = time.perf_counter()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        raise_if_stopped()  # a caller that stopped waiting: no further step starts
        self.on_stage(name)
        tick = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - tick

    def shares(self, clips: int) -> dict[str, float]:
        """Each clip's share of every step, and of the whole call (``total``)."""
        out = {k: round(v / clips, 4) for k, v in self.seconds.items()}
        out["total"] = round((time.perf_counter() - self.began) / clips, 4)
        return out
