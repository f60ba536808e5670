"""The one place that knows a corpus folder's file layout.

<corpus>/manifest.parquet      one row per clip (dubops.data.schema)
<corpus>/corpus.json           how it was made: config, seed, counts, version
<corpus>/audio/<clip_id>.wav   target speech, 24 kHz mono
<corpus>/prompt/<clip_id>.wav  timbre prompt for that clip
<corpus>/video/<clip_id>.mp4   silent video, 25 fps
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = "manifest.parquet"
CORPUS_INFO_NAME = "corpus.json"


@dataclass(frozen=True)
class CorpusLayout:
    """Paths inside one corpus folder."""

    root: Path

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def info(self) -> Path:
        return self.root / CORPUS_INFO_NAME

    @property
    def audio_dir(self) -> Path:
        return self.root / "audio"

    @property
    def prompt_dir(self) -> Path:
        return self.root / "prompt"

    @property
    def video_dir(self) -> Path:
        return self.root / "video"

    def audio_rel(self, clip_id: str) -> str:
        return f"audio/{clip_id}.wav"

    def prompt_rel(self, clip_id: str) -> str:
        return f"prompt/{clip_id}.wav"

    def video_rel(self, clip_id: str) -> str:
        return f"video/{clip_id}.mp4"

    def resolve(self, rel: str) -> Path:
        """Absolute path of a manifest path (relative paths are under the root)."""
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    def make_dirs(self) -> None:
        for d in (self.audio_dir, self.prompt_dir, self.video_dir):
            d.mkdir(parents=True, exist_ok=True)


def manifest_hash(manifest_path: Path) -> str:
    """The data version: a short hash of the manifest file's bytes."""
    digest = hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest()
    return digest[:16]
