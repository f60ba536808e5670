"""Atomic file writes: nothing is ever left half-written.

Every writer in DubOps goes through :func:`atomic_path`: it hands out a temp
path beside the target and renames it over the target only when the block
finishes without an exception.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temp path in the target's folder; rename it over ``target`` on success."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}{target.suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def replace_dir(tmp: str | Path, target: str | Path) -> None:
    """Rename the finished folder ``tmp`` over ``target``.

    An existing target is first moved aside and deleted only after the swap, so a
    crash leaves either the old folder or the new one at ``target``, never a mix.
    """
    tmp, target = Path(tmp), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def write_json(path: str | Path, data: Any) -> None:
    """Write JSON atomically, pretty-printed."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def marked_with(folder: str | Path, marker: str, *keys: str) -> bool:
    """Whether ``folder/marker`` is a JSON object with every one of ``keys``.

    A command that writes a folder whole writes such a file last, so its
    presence says the command made the folder.
    """
    try:
        data = json.loads((Path(folder) / marker).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(k in data for k in keys)


def check_replaceable(folder: str | Path, option: str, what: str, marker: str, ours: bool) -> None:
    """Refuse to replace a folder a command did not make (it may hold a user's files).

    A missing or empty folder, or one the command made (``ours``), may be
    replaced; a file, or a folder with other files, raises ``InputError`` and is
    left as it is.
    """
    from dubops.errors import InputError

    root = Path(folder)
    if root.exists() and not root.is_dir():
        raise InputError(f"{option} {root}: is a file; give a folder for the {what}")
    if not root.is_dir() or ours or not any(root.iterdir()):
        return
    raise InputError(
        f"{option} {root}: holds files but no {marker}, so it is not a {what} this command "
        f"made, and writing it would replace the folder and delete them; choose another "
        f"{option}, or delete the folder yourself if its files can go"
    )
