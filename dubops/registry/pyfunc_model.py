"""The registered dubbing model's code: an MLflow pyfunc "model from code" over a bundle.

MLflow copies this file into every logged model and executes it at load time
(``mlflow.models.set_model`` below names the model object); no Python object is
pickled. ``load_context`` builds a :class:`dubops.inference.DubbingPipeline`
from the logged bundle (safetensors + JSON), checked against the registered
version's ``bundle_hash``; ``predict`` turns each row into a
:class:`dubops.inference.DubRequest` and dubs them as one batch.

Do not import this module from DubOps code: importing it registers the model.

Input (a DataFrame, one row per clip): the video as ``video_b64`` (the mp4's
bytes, base64) or ``video_path``; the timbre prompt as ``prompt_b64`` or
``prompt_path``; ``script``; optionally ``react``, ``clip_id``, ``speaker_id``
and the overrides ``scene_type``, ``gender``, ``age``, ``emotion``,
``target_seconds``, ``seed``, ``nfe``. A path is read only under the model
config's ``allowed_roots`` (default: none) or inside the bundle
(``bundle://example/clip.mp4``, the input example). Params: ``audio`` =
``base64`` (default: the wav in the response) or ``path`` (a wav under the
model's own output folder, ``out_dir`` in the model config); ``mp4`` = true adds
the muxed video (``mp4_b64``). Output columns:
:data:`dubops.registry.model_registry.OUTPUT_COLUMNS`.

Model config (logged; a server overrides it at load time with
``load_model(uri, model_config={...})`` or ``MLFLOW_PYFUNC_INFERENCE_CONFIG``):
``library_dir`` (the footage library), ``backend``, ``bundle_hash`` (what the
bundle must hash to), ``allowed_roots`` (folders requests may name, separated
by ``os.pathsep``), ``out_dir``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

BUNDLE_SCHEME = "bundle://"
OVERRIDES = ("scene_type", "gender", "age", "emotion", "target_seconds", "seed", "nfe")
TEXT = ("script", "react", "clip_id", "speaker_id")


class DubbingModel(PythonModel):
    """MLflow's face of :class:`dubops.inference.DubbingPipeline`."""

    def load_context(self, context: Any) -> None:
        from dubops.inference import DubbingPipeline

        settings = dict(context.model_config or {})
        self.bundle_dir = Path(context.artifacts["bundle"]).resolve()
        self.pipeline = DubbingPipeline.from_bundle(
            self.bundle_dir,
            library_dir=settings.get("library_dir") or None,
            backend=settings.get("backend") or "numpy",
            expected_hash=settings.get("bundle_hash") or None,
            model_version=settings.get("model_version") or None,
        )
        roots = settings.get("allowed_roots") or ""
        if isinstance(roots, str):
            roots = [r for r in roots.split(os.pathsep) if r]
        self.allowed_roots = [Path(r) for r in roots]
        self.out_dir = Path(settings.get("out_dir") or tempfile.mkdtemp(prefix="dubops-dubbed-"))

    # pd.DataFrame is a hint MLflow accepts without inferring a second schema from it.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from dubops.errors import InputError

        params = params or {}
        mode = params.get("audio") or "base64"
        if mode not in ("path", "base64"):
            raise InputError(f"params.audio: must be 'path' or 'base64', got {mode!r}")
        want_mp4 = str(params.get("mp4", False)).lower() in ("true", "1")
        records = pd.DataFrame(model_input).to_dict("records")
        requests = [self._request(r, want_mp4) for r in records]
        results = self.pipeline.dub_many(requests)
        return pd.DataFrame([self._row(r, mode) for r in results])

    def _request(self, record: dict[str, Any], want_mp4: bool) -> Any:
        from dubops.inference.request import DubRequest, check_allowed_roots

        fields: dict[str, Any] = {k: _value(record.get(k)) for k in (*TEXT, *OVERRIDES)}
        fields = {k: v for k, v in fields.items() if v is not None}
        fields["video"] = self._media(record, "video")
        fields["prompt"] = self._media(record, "prompt")
        request = DubRequest(**fields, mp4=want_mp4)
        roots = [*self.allowed_roots, self.bundle_dir]
        check_allowed_roots(request, roots)
        return request

    def _media(self, record: dict[str, Any], name: str) -> Any:
        from dubops.errors import InputError

        encoded, path = _value(record.get(f"{name}_b64")), _value(record.get(f"{name}_path"))
        if encoded:
            try:
                return base64.b64decode(str(encoded), validate=True)
            except ValueError:
                raise InputError(f"{name}_b64: not valid base64; encode the file's bytes") from None
        if not path:
            raise InputError(f"{name}: give {name}_b64 (the file's bytes, base64) or {name}_path")
        text = str(path)
        if text.startswith(BUNDLE_SCHEME):
            return self.bundle_dir / text[len(BUNDLE_SCHEME) :]
        return Path(text)

    def _row(self, result: Any, mode: str) -> dict[str, Any]:
        from dubops.audio import write_wav

        wav_path, audio_b64 = "", ""
        if mode == "path":
            target = self.out_dir / f"{result.name}-{uuid.uuid4().hex[:8]}.wav"
            write_wav(target, result.wave, result.sample_rate)
            wav_path = str(target)
        else:
            audio_b64 = _wav_base64(result.wave, result.sample_rate)
        conclusion = result.conclusion or {}
        return {
            "clip": result.name,
            "wav_path": wav_path,
            "audio_b64": audio_b64,
            "mp4_b64": base64.b64encode(result.mp4).decode("ascii") if result.mp4 else "",
            "sample_rate": int(result.sample_rate),
            "audio_seconds": float(result.duration),
            **{f: str(conclusion.get(f, "")) for f in ("scene_type", "gender", "age", "emotion")},
            "conclusion_source": json.dumps(result.conclusion_source),
            "parse_ok": bool(result.parse_ok),
            "fallback": bool(result.fallback),
            "reasoning": result.reasoning_text,
            "footage": json.dumps(result.footage),
            "seconds": json.dumps(result.seconds),
            "model_version": result.model_version or "",
        }


def _value(value: Any) -> Any:
    """A DataFrame cell, with pandas' missing values as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _wav_base64(wave: Any, sample_rate: int) -> str:
    from dubops.audio import wav_bytes

    return base64.b64encode(wav_bytes(wave, sample_rate)).decode("ascii")


mlflow.models.set_model(DubbingModel())
