"""The registered dubbing model's code: an MLflow pyfunc "model from code" over a bundle.

MLflow copies this file into every logged model and executes it at load time
(``mlflow.models.set_model`` below names the model object); no Python object is
pickled. ``load_context`` builds a :class:`dubops.dubbing.DubbingPipeline` from
the logged bundle (safetensors + JSON); ``predict`` dubs one clip per row.

Do not import this module from DubOps code: importing it registers the model.

Input (a DataFrame, one row per clip): ``video_path``, ``script``, ``prompt_path``
and optionally ``react``. A path may be ``bundle://example/clip.mp4``: a file
inside the logged bundle (its example clip, which is also the input example).
Params: ``audio`` = ``path`` (default: a wav file per clip) or ``base64`` (the
wav bytes in the response); ``out_dir`` for the wav files (default: a temp folder).
Output columns: see :data:`dubops.registry.model_registry.OUTPUT_COLUMNS`.

The footage library is the model config's ``library_dir``: logged as the library
the bundle was made with; a server elsewhere overrides it at load time with
``load_model(uri, model_config={"library_dir": ...})`` or MLflow's own
``MLFLOW_PYFUNC_INFERENCE_CONFIG='{"library_dir": "/mnt/library"}'``.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
import uuid
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

BUNDLE_SCHEME = "bundle://"


class DubbingModel(PythonModel):
    """MLflow's face of :class:`dubops.dubbing.DubbingPipeline`."""

    def load_context(self, context: Any) -> None:
        from dubops.dubbing import DubbingPipeline

        settings = dict(context.model_config or {})
        self.bundle_dir = Path(context.artifacts["bundle"])
        self.pipeline = DubbingPipeline.from_bundle(
            self.bundle_dir,
            library_dir=settings.get("library_dir") or None,
            backend=settings.get("backend") or "numpy",
        )
        self.out_dir: Path | None = None

    # pd.DataFrame is a hint MLflow accepts without inferring a second schema from it.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from dubops.audio import write_wav

        params = params or {}
        mode = params.get("audio") or "path"
        if mode not in ("path", "base64"):
            raise ValueError(f"params.audio must be 'path' or 'base64', got {mode!r}")
        frame = pd.DataFrame(model_input)
        missing = [c for c in ("video_path", "script", "prompt_path") if c not in frame]
        if missing:
            raise ValueError(f"model input lacks the column(s) {missing}")
        out_dir = self._out_dir(params.get("out_dir") or "")
        rows = []
        for record in frame.to_dict("records"):
            video = self._resolve(record["video_path"], "video_path")
            prompt = self._resolve(record["prompt_path"], "prompt_path")
            react = record.get("react")
            react = "" if react is None or (isinstance(react, float) and react != react) else react
            result = self.pipeline.dub(video, str(record["script"]), prompt, react=str(react))
            wav_path, audio_b64 = "", ""
            if mode == "path":
                target = out_dir / f"{video.stem}-{uuid.uuid4().hex[:8]}.wav"
                write_wav(target, result.wave, result.sample_rate)
                wav_path = str(target)
            else:
                audio_b64 = _wav_base64(result.wave, result.sample_rate)
            rows.append(
                {
                    "clip": video.stem,
                    "wav_path": wav_path,
                    "audio_b64": audio_b64,
                    "sample_rate": int(result.sample_rate),
                    "audio_seconds": float(result.duration),
                    **result.conclusion,
                    "parse_ok": bool(result.parse_ok),
                    "fallback": bool(result.fallback),
                    "reasoning": result.reasoning_text,
                    "seconds": json.dumps(result.seconds),
                }
            )
        return pd.DataFrame(rows)

    def _resolve(self, value: Any, field: str) -> Path:
        text = str(value)
        if text.startswith(BUNDLE_SCHEME):
            root = self.bundle_dir.resolve()
            path = (root / text[len(BUNDLE_SCHEME) :]).resolve()
            if root not in path.parents:
                raise ValueError(f"{field}: {text} points outside the bundle")
            return path
        return Path(text)

    def _out_dir(self, requested: str) -> Path:
        if requested:
            folder = Path(requested)
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        if self.out_dir is None:
            self.out_dir = Path(tempfile.mkdtemp(prefix="dubops-dubbed-"))
        return self.out_dir


def _wav_base64(wave: Any, sample_rate: int) -> str:
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    samples = np.clip(np.asarray(wave, dtype=np.float32), -1.0, 1.0)
    sf.write(buffer, samples, sample_rate, subtype="PCM_16", format="WAV")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


mlflow.models.set_model(DubbingModel())
