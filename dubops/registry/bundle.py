"""The dubbing bundle: every file the dubbing model needs at inference, in one folder.

<bundle>/bundle.json        parts, the footage-library version expected, data version, hashes
<bundle>/reasoner/          the reasoner (safetensors + processor + reasoner.json)
<bundle>/speech/            the ControlNet (or graph) stage: dubbing.safetensors, graph.*,
                            speech.json, vocab.json, stage.json (pretrain_dir = ../dit)
<bundle>/dit/               the pretrained DiT: dit.safetensors, speech.json, vocab.json
<bundle>/extractors/        scene/face/text/audio extractors (embed a new clip for retrieval)
<bundle>/example/           one held-out clip: clip.mp4, prompt.wav, example.json

A bundle is recognised by its ``bundle.json`` (written last, before the folder is
renamed into place): assembly replaces a folder that has one, or an empty one, and
refuses any other (it may hold a user's files) before it writes anything.

Only safetensors weights and JSON/text settings are copied (training checkpoints,
samples and caches stay behind); nothing pickled enters. The footage library is
not copied: it is a Feast repository with its own store, versioned on its own;
the bundle records the version it was trained with and
:class:`dubops.inference.DubbingPipeline` refuses a library of another version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dubops.errors import DubOpsError
from dubops.fileio import check_replaceable as replaceable
from dubops.fileio import marked_with, replace_dir, sha256_file, write_json
from dubops.registry.timestamps import local_iso

logger = logging.getLogger(__name__)

BUNDLE_FORMAT = 1
BUNDLE_FILE = "bundle.json"
EXAMPLE_DIR = "example"
MONITORING_DIR = "monitoring"  # the drift reference
PARTS = ("reasoner", "speech", "dit", "extractors")
# What a bundle may hold: weights as safetensors, settings as JSON/text. Pickles
# (.bin, .pt, .pkl) are never copied, whatever a stage folder contains.
_KEEP_SUFFIXES = (".safetensors", ".json", ".txt", ".jinja", ".model", ".yaml")
_REQUIRED = {
    "reasoner": (["reasoner.json"], "dubops train reasoner-sft"),
    "speech": (["dubbing.safetensors", "speech.json", "vocab.json", "stage.json"], ""),
    "dit": (["dit.safetensors", "speech.json", "vocab.json"], "dubops train dit-pretrain"),
    "extractors": (
        [
            f"{m}.{ext}"
            for m in ("scene", "face", "text", "audio")
            for ext in ("safetensors", "json")
        ],
        "dubops train extractors",
    ),
}


class BundleError(DubOpsError, ValueError):
    """A stage folder or bundle is missing, incomplete or inconsistent; says the fix."""


@dataclass(frozen=True)
class BundleInfo:
    """What ``bundle.json`` records, with the parts as absolute paths."""

    root: Path
    library_version: str
    library_k: int
    needs_library: bool
    data_version: str
    extractor_versions: dict[str, str]
    bundle_hash: str
    example: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def part(self, name: str) -> Path:
        return self.root / self.raw["parts"][name]

    @property
    def drift_reference(self) -> Path | None:
        """The bundled drift reference, or None (bundles assembled without one)."""
        from dubops.monitoring.reference import FILE_NAME

        path = self.root / MONITORING_DIR / FILE_NAME
        return path if path.is_file() else None

    @property
    def example_video(self) -> Path:
        return self.root / EXAMPLE_DIR / "clip.mp4"

    @property
    def example_prompt(self) -> Path:
        return self.root / EXAMPLE_DIR / "prompt.wav"


def assemble_bundle(
    out_dir: Path,
    *,
    reasoner_dir: Path,
    speech_dir: Path,
    extractors_dir: Path,
    library_dir: Path,
    data_dir: Path | None = None,
    drift_reference: Path | None = None,
) -> Path:
    """Copy the weights (safetensors) and configs the dubbing model needs into ``out_dir``.

    Written to a temp folder beside ``out_dir`` and renamed into place, so a
    failure never leaves half a bundle (an existing bundle is replaced whole).

    Args:
        out_dir: the bundle folder to write: missing, empty, or a bundle assembled
            before (replaced); any other folder is refused.
        reasoner_dir: a ``dubops train reasoner-sft`` / ``reasoner-mpo`` folder.
        speech_dir: a ``dubops train graph`` folder (or a ``controlnet`` one); its DiT
            folder is found through its ``stage.json``.
        extractors_dir: the extractors the footage library was built with.
        library_dir: the footage library (its version is recorded, not its files).
        data_dir: the corpus; its first held-out clip becomes the bundle's example
            (the model's MLflow input example). Without it a synthetic clip is made.
        drift_reference: the evaluate step's ``drift_reference.json``, kept as
            ``monitoring/drift_reference.json`` so the servers score drift against the
            reference this version was evaluated on (without it: no online drift).

    Returns:
        ``out_dir``.

    Raises:
        InputError: ``out_dir`` is a file, or a non-empty folder without a ``bundle.json``.
        BundleError: a part is missing, or the library does not match the graph
            stage or the extractors (the message names the command that fixes it).
    """
    from dubops.emotion.conditioner import is_graph_dir
    from dubops.emotion.footage_vectors import extractor_versions
    from dubops.feature_store.layout import BUILD_HINT, LibraryLayout

    out_dir, speech_dir = Path(out_dir), Path(speech_dir)
    check_replaceable(out_dir)
    library = LibraryLayout(Path(library_dir)).read_info()
    stage = _read_json(speech_dir / "stage.json", "speech_dir", "dubops train controlnet")
    pretrain_dir = speech_dir / stage.get("pretrain_dir", "")
    sources = {
        "reasoner": Path(reasoner_dir),
        "speech": speech_dir,
        "dit": pretrain_dir,
        "extractors": Path(extractors_dir),
    }
    for name, folder in sources.items():
        _check_part(name, folder)
    graph = is_graph_dir(speech_dir)
    if graph and stage.get("library_version") != library["version"]:
        raise BundleError(
            f"the graph stage {speech_dir} was trained with footage library version "
            f"{stage.get('library_version')}, but {library_dir} has version {library['version']}; "
            f"give the library it was trained with, or retrain it with `dubops train graph "
            f"--library {library_dir}`"
        )
    versions = extractor_versions(extractors_dir)
    if versions != library.get("extractor_versions"):
        raise BundleError(
            f"footage library {library_dir} was built with extractors "
            f"{library.get('extractor_versions')}, not those in {extractors_dir} ({versions}); "
            + BUILD_HINT.format(path=library_dir)
            + f" --extractors {extractors_dir}"
        )
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for name, folder in sources.items():
            _copy_part(folder, tmp / name)
        speech_stage = {
            **stage,
            "pretrain_dir": "../dit",
            "source_pretrain_dir": str(pretrain_dir.resolve()),
        }
        write_json(tmp / "speech" / "stage.json", speech_stage)
        example = _write_example(tmp / EXAMPLE_DIR, data_dir)
        if drift_reference is not None:
            (tmp / MONITORING_DIR).mkdir()
            shutil.copy2(drift_reference, tmp / MONITORING_DIR / Path(drift_reference).name)
        files = _file_hashes(tmp)
        info = {
            "format": BUNDLE_FORMAT,
            "created_at": local_iso(),
            "parts": {name: name for name in PARTS},
            "sources": {name: str(folder.resolve()) for name, folder in sources.items()},
            "library_version": library["version"],
            "library_dir": str(Path(library_dir).resolve()),
            "library_k": int(stage.get("library_k", library.get("library_config", {}).get("k", 3))),
            "needs_library": graph,
            "data_version": library.get("manifest_hash", ""),
            "extractor_versions": versions,
            "example": example,
            "files": files,
            "bundle_hash": _bundle_hash(files),
        }
        write_json(tmp / BUNDLE_FILE, info)
        replace_dir(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logger.info("assembled dubbing bundle %s (%s)", out_dir, info["bundle_hash"])
    return out_dir


def is_bundle(folder: str | Path) -> bool:
    """Whether assembly made this folder: its ``bundle.json`` names a format and a hash."""
    return marked_with(folder, BUNDLE_FILE, "format", "bundle_hash")


def check_replaceable(out_dir: str | Path, option: str = "out_dir") -> None:
    """Refuse to replace a folder that is not a bundle (it may hold a user's files).

    Raises:
        InputError: ``out_dir`` is a file, or a non-empty folder without a ``bundle.json``.
    """
    replaceable(out_dir, option, "bundle", BUNDLE_FILE, is_bundle(out_dir))


def read_bundle(bundle_dir: str | Path) -> BundleInfo:
    """The bundle's ``bundle.json``; a :class:`BundleError` when it is missing or unreadable."""
    root = Path(bundle_dir)
    raw = _read_json(root / BUNDLE_FILE, "bundle", "assemble one with assemble_bundle")
    if raw.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{root / BUNDLE_FILE} has format {raw.get('format')}; this DubOps reads "
            f"{BUNDLE_FORMAT}: assemble the bundle again"
        )
    for name in PARTS:
        if not (root / raw["parts"][name]).is_dir():
            raise BundleError(f"bundle {root} lacks its {name} folder; assemble it again")
    return BundleInfo(
        root=root,
        library_version=str(raw["library_version"]),
        library_k=int(raw["library_k"]),
        needs_library=bool(raw["needs_library"]),
        data_version=str(raw.get("data_version", "")),
        extractor_versions=dict(raw.get("extractor_versions", {})),
        bundle_hash=str(raw["bundle_hash"]),
        example=dict(raw.get("example", {})),
        raw=raw,
    )


def verify_bundle(bundle_dir: str | Path) -> list[str]:
    """Files whose bytes no longer match ``bundle.json``'s hashes (empty: intact)."""
    return changed_files(read_bundle(bundle_dir))


def changed_files(info: BundleInfo) -> list[str]:
    """:func:`verify_bundle` for a bundle already read (``bundle.json`` is not read again)."""
    now = _file_hashes(info.root)
    return sorted(rel for rel, sha in info.raw["files"].items() if now.get(rel) != sha)


def _read_json(path: Path, what: str, fix: str) -> dict[str, Any]:
    if not path.is_file():
        raise BundleError(f"{what}: {path} is missing" + (f"; {fix}" if fix else ""))
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{what}: {path} is not valid JSON ({exc})") from None


def _check_part(name: str, folder: Path) -> None:
    needed, command = _REQUIRED[name]
    if not folder.is_dir():
        raise BundleError(
            f"{name}_dir {folder} is not a folder" + (f"; run `{command}` first" if command else "")
        )
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        hint = f"; run `{command} --out {folder}`" if command else "; finish its training stage"
        raise BundleError(f"{name} folder {folder} lacks {missing}{hint}")


def _copy_part(src: Path, dst: Path) -> None:
    """Top-level weights and settings only (no checkpoints/, samples/, caches, pickles)."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix in _KEEP_SUFFIXES:
            shutil.copy2(path, dst / path.name)
        elif path.is_file() and path.suffix in (".bin", ".pt", ".pth", ".pkl", ".pickle"):
            logger.info("bundle: not copying %s (pickled files never enter a bundle)", path)


def _write_example(folder: Path, data_dir: Path | None) -> dict[str, Any]:
    """One held-out clip (test_s2 first: an unseen speaker) as the model's input example."""
    import pandas as pd

    from dubops.data.layout import CorpusLayout

    if data_dir is None:
        return _synthetic_example(folder)
    layout = CorpusLayout(Path(data_dir))
    if not layout.manifest.is_file():
        raise BundleError(f"data_dir {data_dir} has no manifest.parquet; pass the corpus folder")
    manifest = pd.read_parquet(layout.manifest)
    for split in ("test_s2", "test_s1", "val", "train"):
        rows = manifest[manifest["split"] == split]
        if len(rows):
            row = rows.iloc[0]
            break
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(layout.resolve(row["video_path"]), folder / "clip.mp4")
    shutil.copy2(layout.resolve(row["prompt_audio_path"]), folder / "prompt.wav")
    example = {
        "clip_id": str(row["clip_id"]),
        "split": str(row["split"]),
        "script": str(row["script"]),
        "react": str(row["react"]),
        "source": str(Path(data_dir).resolve()),
    }
    write_json(folder / "example.json", example)
    return example


def _synthetic_example(folder: Path) -> dict[str, Any]:
    """A clip from the synthetic generator (tiny preset) when no corpus is given."""
    import tempfile

    from dubops.config import load_config
    from dubops.data.synthetic import make_clip, plan_corpus

    config = load_config("tiny", overrides=["synth.clips=24"])
    spec = next(s for s in plan_corpus(config) if s.split == "test_s2")
    with tempfile.TemporaryDirectory() as tmp:
        row = make_clip(spec, Path(tmp), config)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(tmp) / row["video_path"], folder / "clip.mp4")
        shutil.copy2(Path(tmp) / row["prompt_audio_path"], folder / "prompt.wav")
    example = {
        "clip_id": row["clip_id"],
        "split": row["split"],
        "script": row["script"],
        "react": row["react"],
        "source": "synthetic (tiny preset)",
    }
    write_json(folder / "example.json", example)
    return example


def _file_hashes(root: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file but ``bundle.json``."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == BUNDLE_FILE:
            continue
        out[rel] = sha256_file(path)
    return out


def _bundle_hash(files: dict[str, str]) -> str:
    blob = "\n".join(f"{rel}:{sha}" for rel, sha in sorted(files.items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
