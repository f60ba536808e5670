"""The small base speech checkpoint the project ships, and its integrity check.

Minutes of training from random weights on two CPU cores do not give intelligible
speech (DESIGN.md: ~1,100 DiT updates before the words come out), so the demo
fine-tunes from a base that our own pipeline trained on our own corpus, as a
scheduled retraining in production starts from the champion. The folder holds the
DiT and the stage-2.2 weights in float16 (half the bytes; training widens them to
float32 on load), the phoneme vocabulary the DiT's text embedding is indexed by, the
speech config they were built with, and ``base.json``: the commands that trained
them, the corpus's data version and the SHA-256 of every file, checked on use.

Usage::

    python -m dubops.speech.base_checkpoint --dit outputs/base-dit \
        --controlnet outputs/base-controlnet --data data/tiny --out models/tiny \
        --command "dubops train dit-pretrain ..." --command "dubops train controlnet ..."
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from dubops.fileio import sha256_file, write_json
from dubops.speech.loading import DIT_FILE, DUBBING_FILE, SPEECH_FILE, VOCAB_FILE
from dubops.speech.pretrained import CheckpointError

BASE_FILE = "base.json"
# What base.json keeps of each stage's stage.json (totals: all its --resume parts).
STAGE_FIELDS = ("step", "val_loss", "minutes", "minutes_total", "parts")
REFINEMENTS = ("duration_refine", "pitch_refine")


def _half(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    state = {
        k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous()
        for k, v in load_file(str(src)).items()
    }
    tmp = dst.with_name(f".{dst.name}.tmp")
    save_file(state, str(tmp))
    tmp.replace(dst)


def export_base(
    dit_dir: Path, controlnet_dir: Path, data_dir: Path, out: Path, commands: list[str]
) -> dict:
    """Write the base folder from a finished DiT and ControlNet run; return ``base.json``."""
    from dubops.data.layout import CorpusLayout, manifest_hash

    out.mkdir(parents=True, exist_ok=True)
    _half(dit_dir / DIT_FILE, out / DIT_FILE)
    _half(controlnet_dir / DUBBING_FILE, out / DUBBING_FILE)
    (out / VOCAB_FILE).write_bytes((dit_dir / VOCAB_FILE).read_bytes())
    # The base stands alone: a DiT continued from an earlier base names that base's file
    # as its start, which this export overwrites (base.json keeps the history).
    speech = json.loads((dit_dir / SPEECH_FILE).read_text())
    write_json(out / SPEECH_FILE, {**speech, "pretrained_dit": None})
    stages = {}
    for stage, folder in (("dit", dit_dir), ("controlnet", controlnet_dir)):
        summary = folder / "stage.json"
        if summary.is_file():
            done = json.loads(summary.read_text())
            stages[stage] = {k: done.get(k) for k in STAGE_FIELDS}
            # The refinements after a ControlNet stage, where it ran them.
            stages[stage].update({k: done[k] for k in REFINEMENTS if k in done})
    files = [DIT_FILE, DUBBING_FILE, VOCAB_FILE, SPEECH_FILE]
    record = {
        "made": datetime.now(UTC).isoformat(timespec="seconds"),
        "commands": commands,
        "data_dir": str(data_dir),
        "data_version": manifest_hash(CorpusLayout(data_dir).manifest),
        "stages": stages,
        "dtype": "float16",
        "sha256": {name: sha256_file(out / name) for name in files},
    }
    write_json(out / BASE_FILE, record)
    return record


def verify_base(folder: str | Path) -> dict | None:
    """``base.json`` of a shipped folder after checking every file's hash (None: no record).

    Raises:
        CheckpointError: a file is missing or differs from what was shipped.
    """
    folder = Path(folder)
    record_path = folder / BASE_FILE
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text())
    for name, expected in record["sha256"].items():
        path = folder / name
        if not path.is_file() or sha256_file(path) != expected:
            raise CheckpointError(
                f"{path} is missing or differs from the shipped base ({BASE_FILE}); restore it "
                f"with `git checkout -- {folder}` or retrain it with the commands in {record_path}"
            )
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dit", type=Path, required=True, help="finished dit-pretrain folder")
    parser.add_argument("--controlnet", type=Path, required=True, help="finished controlnet folder")
    parser.add_argument("--data", type=Path, required=True, help="the corpus they trained on")
    parser.add_argument("--out", type=Path, required=True, help="the base folder to write")
    parser.add_argument("--command", action="append", default=[], help="a training command")
    args = parser.parse_args(argv)
    record = export_base(args.dit, args.controlnet, args.data, args.out, args.command)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
