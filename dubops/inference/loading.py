"""Building a :class:`~dubops.inference.pipeline.DubbingPipeline` from what training made.

Three sources, one assembly (:func:`load_parts`):

* a **bundle** (:mod:`dubops.registry.bundle`): every file is checked against
  ``bundle.json``'s hashes, and the bundle's hash against the one the caller
  expects (the registered version's ``bundle_hash`` tag), so neither a changed
  file nor a swapped bundle is served;
* a **registered version** (``models:/dubbing@champion``): through
  ``mlflow.pyfunc.load_model``, the path a model server takes, with the
  version's tag as the expected hash;
* **training outputs** (a controlnet or graph run folder, the reasoner, the
  extractors, the library): what the pipeline's evaluate step scores, before
  any bundle exists.

The library is checked against the version the model was trained with: a
rebuilt library retrieves other footage than the graph learned from, so another
version is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dubops.errors import InputError

if TYPE_CHECKING:
    from dubops.config import AudioConfig, DubOpsConfig
    from dubops.inference.pipeline import DubbingPipeline
    from dubops.speech.settings import LipAlignConfig


def load_parts(
    cls: type[DubbingPipeline],
    speech_dir: str | Path,
    reasoner_dir: str | Path | None = None,
    extractors_dir: str | Path | None = None,
    library_dir: str | Path | None = None,
    library_version: str | None = None,
    library_k: int | None = None,
    backend: str = "numpy",
    audio: AudioConfig | None = None,
    lip_align: LipAlignConfig | None = None,
    bundle: Any = None,
    model_version: str | None = None,
    reason_batch_size: int = 8,
    max_new_tokens: int | None = None,
) -> DubbingPipeline:
    """A pipeline from its parts' folders.

    Args:
        speech_dir: a finished controlnet or graph run folder.
        reasoner_dir: the reasoner; None dubs with overrides (or no conclusion).
        extractors_dir: the extractors the library was built with; None allows
            only ``oracle_footage`` requests for a graph model.
        library_dir: the footage library; required by a graph model.
        library_version / library_k: what the graph was trained with (default:
            its run folder's ``stage.json``).
    """
    from dubops.config import AudioConfig
    from dubops.emotion.conditioner import is_graph_dir
    from dubops.speech.generator import SpeechGenerator

    generator = SpeechGenerator.from_dir(speech_dir, audio or AudioConfig(), lip_align=lip_align)
    reasoner = None
    if reasoner_dir is not None:
        from dubops.reasoning.inference import Reasoner

        reasoner = Reasoner.from_dir(reasoner_dir)
    retriever = None
    if is_graph_dir(Path(speech_dir)):
        stage = json.loads((Path(speech_dir) / "stage.json").read_text())
        expected = library_version or stage.get("library_version")
        k = int(library_k or stage.get("library_k", 3))
        retriever = _retriever(speech_dir, library_dir, expected, k, extractors_dir, backend)
    elif library_dir is not None:
        import logging

        logging.getLogger(__name__).warning(
            "%s has no emotion graph: the footage library is not used", speech_dir
        )
    return cls(
        generator,
        reasoner,
        retriever,
        bundle=bundle,
        model_version=model_version,
        reason_batch_size=reason_batch_size,
        max_new_tokens=max_new_tokens,
    )


def load_bundle(
    cls: type[DubbingPipeline],
    bundle_dir: str | Path,
    library_dir: str | Path | None = None,
    backend: str = "numpy",
    audio: AudioConfig | None = None,
    expected_hash: str | None = None,
    model_version: str | None = None,
) -> DubbingPipeline:
    """Every part of a bundle (and, for a graph model, its footage library).

    Raises:
        BundleError: the bundle is incomplete, a file changed since it was
            assembled, or its hash is not ``expected_hash``.
        LibraryError: the library is missing or has another version than the
            bundle records (the message names ``dubops library build``).
    """
    from dubops.registry.bundle import read_bundle

    info = read_bundle(bundle_dir)
    check_bundle(info, expected_hash)
    return load_parts(
        cls,
        info.part("speech"),
        reasoner_dir=info.part("reasoner"),
        extractors_dir=info.part("extractors") if info.needs_library else None,
        library_dir=(library_dir or info.raw.get("library_dir")) if info.needs_library else None,
        library_version=info.library_version,
        library_k=info.library_k,
        backend=backend,
        audio=audio,
        bundle=info,
        model_version=model_version,
    )


def check_bundle(info: Any, expected_hash: str | None) -> None:
    """Refuse a bundle whose files changed, or whose hash is not the expected one."""
    from dubops.registry.bundle import BundleError, changed_files

    changed = changed_files(info)
    if changed:
        raise BundleError(
            f"bundle {info.root}: {changed} changed since it was assembled (hashes in "
            "bundle.json); assemble it again, or load the registered version afresh"
        )
    if expected_hash and info.bundle_hash != expected_hash:
        raise BundleError(
            f"bundle {info.root} has hash {info.bundle_hash}, but the registered version "
            f"records {expected_hash}: its artifacts were replaced; register the bundle again "
            "(dubops registry register) instead of editing a logged model"
        )


def load_pipeline(
    config: DubOpsConfig,
    model: str,
    library_dir: str | Path | None = None,
    reasoner_dir: str | Path | None = None,
    extractors_dir: str | Path | None = None,
) -> tuple[DubbingPipeline, dict[str, Any]]:
    """``(pipeline, what was loaded)`` from a ``models:/`` URI, a bundle or a run folder.

    Raises:
        RegistryError: an empty registry, an unknown version or alias, a bad URI.
        BundleError / LibraryError: a changed bundle, a library of another version.
        InputError: a path that is none of the three.
    """
    from dubops.inference.pipeline import DubbingPipeline
    from dubops.registry.loading import MODELS_SCHEME

    info: dict[str, Any]
    if model.startswith(MODELS_SCHEME):
        pipeline, info = _from_registry(config, model, library_dir)
    elif (Path(model) / "bundle.json").is_file():
        pipeline = DubbingPipeline.from_bundle(
            model, library_dir=library_dir, backend=config.library.backend
        )
        info = {"model": str(model)}
    elif (Path(model) / "stage.json").is_file():
        pipeline = DubbingPipeline.from_parts(
            model,
            reasoner_dir=reasoner_dir,
            extractors_dir=extractors_dir,
            library_dir=library_dir,
            backend=config.library.backend,
            audio=config.audio,
            lip_align=config.speech.lip_align,
            max_new_tokens=config.reasoning.max_new_tokens,
        )
        return pipeline, {"model": str(model)}
    else:
        raise InputError(
            f"--model {model}: neither a bundle folder (bundle.json), a controlnet/graph run "
            "folder (stage.json) nor a registry URI such as models:/dubbing@champion"
        )
    bundle = pipeline.bundle
    info |= {
        "bundle_hash": bundle.bundle_hash,
        "library_version": bundle.library_version,
        "data_version": bundle.data_version,
    }
    return pipeline, info


def _from_registry(
    config: DubOpsConfig, model: str, library_dir: str | Path | None
) -> tuple[DubbingPipeline, dict[str, Any]]:
    import mlflow

    from dubops.registry.loading import MODELS_SCHEME, parse_models_uri
    from dubops.registry.store import TAG_BUNDLE_HASH, registry_client, resolve_version

    name, ref = parse_models_uri(model)
    client = registry_client(config, read_only=True)
    version = resolve_version(client, name, ref)
    # The registry's own record of the bundle, not the copy logged beside it.
    overrides = {
        "backend": config.library.backend,
        "bundle_hash": (version.tags or {}).get(TAG_BUNDLE_HASH, ""),
        "model_version": f"{name}/{version.version}",
    }
    if library_dir is not None:
        overrides["library_dir"] = str(library_dir)
    loaded = mlflow.pyfunc.load_model(
        f"{MODELS_SCHEME}{name}/{version.version}", model_config=overrides
    )
    pipeline = loaded.unwrap_python_model().pipeline
    return pipeline, {"model": model, "name": name, "version": int(version.version)}


def _retriever(
    speech_dir: str | Path,
    library_dir: str | Path | None,
    expected_version: str | None,
    k: int,
    extractors_dir: str | Path | None,
    backend: str,
) -> Any:
    from dubops.emotion.footage_vectors import extractor_class
    from dubops.emotion.graph_settings import QUERY_MODALITIES
    from dubops.inference.retrieval import FootageRetriever

    library = open_library(library_dir, expected_version, backend, speech_dir)
    extractors = None
    if extractors_dir is not None:
        folder = Path(extractors_dir)
        if not folder.is_dir():
            library.close()
            raise InputError(
                f"--extractors {folder}: not a folder; give the extractors the library was built "
                "with (dubops train extractors)"
            )
        extractors = {m: extractor_class(m).load(folder) for m in QUERY_MODALITIES}
    return FootageRetriever(library, k, extractors)


def open_library(
    library_dir: str | Path | None,
    expected_version: str | None,
    backend: str,
    model: str | Path,
) -> Any:
    """The footage library a graph model was trained with, opened; any other version refused."""
    from dubops.feature_store.layout import BUILD_HINT, LibraryError
    from dubops.feature_store.retrieval import FootageLibrary

    if library_dir is None:
        raise InputError(
            f"{model} is a graph-stage model: pass the footage library it was trained with "
            f"(--library DIR; version {expected_version})"
        )
    folder = Path(library_dir)
    try:
        library = FootageLibrary.open(folder, backend=backend)
    except LibraryError as exc:
        raise LibraryError(
            f"{exc}; or give the library this model was trained with (version "
            f"{expected_version}): --library DIR, or the model config's library_dir"
        ) from None
    if expected_version and library.info.version != expected_version:
        library.close()
        raise LibraryError(
            f"footage library {folder} has version {library.info.version}, but {model} was "
            f"trained with version {expected_version}; pass that library (--library DIR) or "
            f"{BUILD_HINT.format(path=folder)} with the extractors the model was trained with"
        )
    return library
