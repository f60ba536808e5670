"""The lock that serialises changes of the champion, and its file-lock kind.

MLflow sets an alias atomically, but a promotion is read-check-write: read the
champion, compare, move the alias, append to the history tag. Two promotions
interleaving could both pass a gate against the same old champion, or lose one
history entry, so :func:`promotion_lock` makes them take turns, by the kind
``registry.lock`` names (``auto``: by the store's URI):

* ``file`` (a SQLite or file store, one host's anyway): ``fcntl.flock`` on a file
  next to the store; the kernel drops the lock when a holder dies, so a crashed
  promotion never blocks the next one. It serialises the processes of one host.
* ``tracking-server`` (an ``http(s)`` server, a database URI): a ticket queue in
  the registry itself (:mod:`dubops.registry.server_lock`), so promotions from
  any host exclude each other with nothing shared but the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from dubops.registry.store import RegistryError
from dubops.registry.timestamps import local_iso

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig

_POLL_S = 0.05
_LOCAL_SCHEMES = ("sqlite:", "file:")


def lock_kind(config: DubOpsConfig) -> Literal["file", "tracking-server"]:
    """``registry.lock``, with ``auto`` resolved by the tracking URI's scheme."""
    from dubops.tracking import resolve_tracking_uri

    if config.registry.lock != "auto":
        return config.registry.lock
    uri = resolve_tracking_uri(config.tracking, create=False)
    return "file" if uri.startswith(_LOCAL_SCHEMES) else "tracking-server"


@contextlib.contextmanager
def promotion_lock(config: DubOpsConfig) -> Iterator[object]:
    """Hold the registry's promotion lock for the block (waits ``registry.lock_timeout_s``).

    Yields the lock file's path (``file``) or this process's ticket (``tracking-server``).

    Raises:
        RegistryError: another promotion held it longer than the timeout (the message
            names the holder or the file, and the fix).
    """
    if lock_kind(config) == "file":
        with file_lock(config) as path:
            yield path
        return
    from dubops.registry.server_lock import server_lock

    with server_lock(config) as ticket:
        yield ticket


def process_owner() -> str:
    """``user@host:pid``: who holds a lock or made a change, as logs and tags name it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


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
def file_lock(config: DubOpsConfig) -> Iterator[Path]:
    """Hold the promotion lock's file (:func:`lock_path`) with ``flock`` for the block.

    Raises:
        RegistryError: another process held it longer than ``registry.lock_timeout_s``.
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
                        f"another promotion ({_file_holder(path)}) has held {path} for over "
                        f"{config.registry.lock_timeout_s:g} s; retry once it is done, or raise "
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


def _file_holder(path: Path) -> str:
    """The holder's pid and since when, as it wrote them (the lock is this host's)."""
    try:
        pid = path.read_text().strip() or "?"
        since = local_iso(path.stat().st_mtime)
    except OSError:
        return "its pid unknown"
    return f"pid {pid} on {socket.gethostname()}, since {since}"
