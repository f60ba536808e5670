"""An inter-process lock that serialises changes of the champion.

MLflow sets an alias atomically, but a promotion is read-check-write: read the
champion, compare, move the alias, append to the history tag. Two promotions
interleaving could both pass a gate against the same old champion, or lose one
history entry. ``fcntl.flock`` on a file next to the registry store makes them
take turns; the kernel drops the lock when a holder dies, so a crashed
promotion never blocks the next one. It serialises the processes of one host
(a SQLite store is one host's anyway); for a remote tracking server, point
``registry.lock_dir`` at a shared filesystem that supports flock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from dubops.registry.store import RegistryError

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

_POLL_S = 0.05


def lock_path(config: DubOpsConfig) -> Path:
    """Beside a SQLite store or a file store; else in ``registry.lock_dir`` or the temp folder."""
    from dubops.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(config.tracking)
    name = f"{config.registry.model_name}.promotion.lock"
    if config.registry.lock_dir:
        return Path(config.registry.lock_dir) / name
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        return db.with_name(f"{db.name}.{name}")
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://")) / name
    digest = hashlib.sha256(uri.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"dubops-registry-{digest}.{name}"


@contextlib.contextmanager
def promotion_lock(config: DubOpsConfig) -> Iterator[Path]:
    """Hold the registry's promotion lock for the block (waits ``registry.lock_timeout_s``).

    Raises:
        RegistryError: another promotion held it longer than the timeout.
    """
    path = lock_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + config.registry.lock_timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"another promotion has held {path} for over "
                        f"{config.registry.lock_timeout_s:g} s; retry, or raise "
                        "registry.lock_timeout_s"
                    ) from None
                time.sleep(_POLL_S)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
