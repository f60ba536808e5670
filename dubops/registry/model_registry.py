"""Register a dubbing bundle: an MLflow pyfunc "model from code", a new version, ``challenger``.

The logged model is :mod:`dubops.registry.pyfunc_model` (its source file, run by
MLflow at load time) plus the bundle folder as an artifact: safetensors and JSON
only, nothing pickled. Its signature says what a request and a response hold;
its input example is the bundle's own example clip (``bundle://example/...``),
so MLflow's serving check at logging time dubs a real clip with the model
about to be registered, and anyone who loads the model can try it at once.
``pip_requirements`` are given, which keeps MLflow from loading the model in a
subprocess to infer them.

Each version carries as tags: every metric (``metric.<name>``), every baseline's
metrics (``baseline.<system>.<name>``), the run and pipeline-run ids, the data,
library and bundle versions and the git commit.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.registry.store import (
    CHALLENGER,
    TAG_BUNDLE_HASH,
    TAG_DATA_VERSION,
    TAG_GIT_COMMIT,
    TAG_LIBRARY_VERSION,
    TAG_PIPELINE_RUN_ID,
    TAG_RUN_ID,
    metric_tags,
    registry_client,
)

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.registry.bundle import BundleInfo

logger = logging.getLogger(__name__)

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
MODEL_ARTIFACT = "dubbing_model"
MODEL_WHEEL_DIR = "artifacts"  # where MLflow puts a logged model's file artifacts
INPUT_COLUMNS = (
    ("video_b64", False),
    ("video_path", False),
    ("script", True),
    ("prompt_b64", False),
    ("prompt_path", False),
    ("react", False),
    ("clip_id", False),
    ("speaker_id", False),
    ("scene_type", False),
    ("gender", False),
    ("age", False),
    ("emotion", False),
)
NUMBER_COLUMNS = (("target_seconds", "double"), ("seed", "long"), ("nfe", "long"))
OUTPUT_COLUMNS = (
    ("clip", "string"),
    ("wav_path", "string"),
    ("audio_b64", "string"),
    ("mp4_b64", "string"),
    ("sample_rate", "long"),
    ("audio_seconds", "double"),
    ("scene_type", "string"),
    ("gender", "string"),
    ("age", "string"),
    ("emotion", "string"),
    ("conclusion_source", "string"),
    ("parse_ok", "boolean"),
    ("fallback", "boolean"),
    ("reasoning", "string"),
    ("footage", "string"),
    ("seconds", "string"),
    ("model_version", "string"),
)


def model_signature() -> Any:
    """Request: media as base64 or allowed paths, script, overrides; response: audio,
    conclusion with its sources, footage, timings."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    columns = [ColSpec("string", name, required=req) for name, req in INPUT_COLUMNS]
    columns += [ColSpec(kind, name, required=False) for name, kind in NUMBER_COLUMNS]
    outputs = Schema([ColSpec(kind, name) for name, kind in OUTPUT_COLUMNS])
    params = ParamSchema(
        [ParamSpec("audio", "string", "base64"), ParamSpec("mp4", "boolean", False)]
    )
    return ModelSignature(inputs=Schema(columns), outputs=outputs, params=params)


def input_example(info: BundleInfo) -> tuple[Any, dict[str, str]]:
    """One row: the bundle's example clip by ``bundle://`` paths, base64 audio back.

    Base64 keeps MLflow's serving check at logging time from leaving wav files behind.
    """
    import pandas as pd

    example = info.example
    frame = pd.DataFrame(
        [
            {
                "video_path": "bundle://example/clip.mp4",
                "script": example.get("script", ""),
                "prompt_path": "bundle://example/prompt.wav",
                "react": example.get("react", ""),
            }
        ]
    )
    return frame, {"audio": "base64"}


def pip_requirements(wheel: Path | None) -> list[str]:
    """The serving environment: DubOps's own wheel (logged with the model, so
    ``mlflow models serve`` can install it: no index has it) and the pins the
    code file needs; the wheel's metadata brings the rest."""
    pins = [f"{MODEL_WHEEL_DIR}/{wheel.name}"] if wheel is not None else []
    for package in ("mlflow", "torch"):
        try:
            pins.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            pins.append(package)
    return pins


def build_wheel(folder: Path) -> Path | None:
    """DubOps's wheel built from its source tree into ``folder`` (None: no source tree).

    The tree is copied first (setuptools writes ``build/`` beside the sources, and two
    registrations at once would collide there), then built without dependencies or build
    isolation (nothing is downloaded). An installation without its source (a container
    image) logs no wheel: its environment lists the installed version instead.
    """
    import shutil
    import subprocess
    import sys
    import tomllib

    import dubops

    root = Path(dubops.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        return None
    project = tomllib.loads((root / "pyproject.toml").read_text())
    sources = {*project["tool"]["setuptools"]["package-dir"].values()}
    copy = folder / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in sorted(sources):
        shutil.copytree(root / name, copy / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(root / name, copy / name)
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    done = subprocess.run([*cmd, "-w", str(folder), str(copy)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the dubops wheel failed: {done.stderr.strip()[-500:]}")
    wheels = sorted(folder.glob("dubops-*.whl"))
    return wheels[-1] if wheels else None


def register_bundle(
    config: DubOpsConfig,
    bundle_dir: Path,
    *,
    metrics: dict[str, float],
    baselines: dict[str, dict[str, float]] | None = None,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> int:
    """Log the bundle as a pyfunc model, register a new version, alias it ``challenger``.

    Args:
        config: the whole config (``registry.model_name``; ``tracking`` for the store).
        bundle_dir: a folder from :func:`dubops.registry.bundle.assemble_bundle`.
        metrics: the evaluation, flat (``mcd_dtw``, ``wer``, ``reasoner_format_validity``...).
        baselines: ``{system: {metric: value}}`` (mean-mel, shuffled, majority...).
        run_id: log into this MLflow run (else the active run, else a new
            ``register_model`` run).
        tags: more version tags (e.g. ``pipeline_run_id``); they win over ours.

    Returns:
        The new version number.

    Raises:
        BundleError: the bundle is incomplete; ValueError: a metric is not a number.
    """
    import mlflow

    from dubops.registry.bundle import read_bundle
    from dubops.tracking import git_commit

    info = read_bundle(bundle_dir)
    clean = _numbers(metrics, "metrics")
    clean_baselines = {
        system: _numbers(values, f"baselines[{system!r}]")
        for system, values in (baselines or {}).items()
    }
    client = registry_client(config)
    name = config.registry.model_name
    with (
        _logging_run(config, run_id, info) as (active_id, parent_id),
        _no_download_bars(),
        tempfile.TemporaryDirectory(prefix="dubops-wheel-") as tmp,
    ):
        wheel = build_wheel(Path(tmp))
        model_info = mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(PYFUNC_FILE),
            artifacts={"bundle": str(info.root.resolve())}
            | ({"wheel": str(wheel)} if wheel is not None else {}),
            model_config={
                "library_dir": info.raw.get("library_dir", ""),
                "backend": config.library.backend,
                "bundle_hash": info.bundle_hash,
                # MLflow overrides only keys logged here: every setting a server may give.
                "allowed_roots": "",
                "out_dir": "",
                "model_version": "",
            },
            signature=model_signature(),
            input_example=input_example(info),
            pip_requirements=pip_requirements(wheel),
        )
        finite = {k: v for k, v in clean.items() if math.isfinite(v)}
        if finite:
            client.log_batch(active_id, metrics=_metric_batch(finite))
    version_tags = {
        TAG_RUN_ID: active_id,
        TAG_PIPELINE_RUN_ID: parent_id or active_id,
        TAG_DATA_VERSION: info.data_version,
        TAG_LIBRARY_VERSION: info.library_version,
        TAG_BUNDLE_HASH: info.bundle_hash,
        TAG_GIT_COMMIT: git_commit() or "unknown",
        "preset": config.preset,
        **metric_tags(clean, clean_baselines),
        **{k: str(v) for k, v in (tags or {}).items()},
    }
    version = mlflow.register_model(model_info.model_uri, name, tags=version_tags)
    number = int(version.version)
    client.set_registered_model_alias(name, CHALLENGER, str(number))
    logger.info("registered %s version %d (challenger) from run %s", name, number, active_id)
    return number


@contextlib.contextmanager
def _logging_run(
    config: DubOpsConfig, run_id: str | None, info: BundleInfo
) -> Iterator[tuple[str, str | None]]:
    """``(run id, parent run id)`` of the run the model is logged in (opened if needed)."""
    import mlflow

    from dubops.tracking import start_run

    active = mlflow.active_run()
    if run_id is None and active is not None:
        yield active.info.run_id, _parent(active.info.run_id)
    elif run_id is not None and active is not None and active.info.run_id == run_id:
        yield run_id, _parent(run_id)
    elif run_id is not None:
        # Resumed only to log into it: it keeps the status it had (another process may
        # still be running it, or it finished already).
        status = mlflow.MlflowClient().get_run(run_id).info.status
        mlflow.start_run(run_id=run_id, nested=active is not None)
        try:
            yield run_id, _parent(run_id)
        finally:
            mlflow.end_run(status=status)
    else:
        with start_run(config, "register_model", data_version=info.data_version) as tracker:
            yield tracker.run_id, None


@contextlib.contextmanager
def _no_download_bars() -> Iterator[None]:
    """MLflow's serving check copies the model with one progress bar per file: not in logs."""
    import os

    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _parent(run_id: str) -> str | None:
    import mlflow

    return mlflow.MlflowClient().get_run(run_id).data.tags.get("mlflow.parentRunId")


def _metric_batch(values: dict[str, float]) -> list[Any]:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, v, now, 0) for k, v in values.items()]


def _numbers(values: dict[str, Any], what: str) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{what}: {key!r} is {value!r}, not a number") from None
    return out
