"""The promotion lock held through the tracking server: a ticket queue in the model registry.

A file lock serialises one host's processes; a cluster's promotions run in pods on
many hosts that share nothing but the MLflow server (and hold no database
credentials). So the lock lives in the registry: the registered model
``<model_name>.promotion-lock``, whose versions are tickets. A process that wants
the lock creates a version, tagged with its owner (user, host, pid), a random
token and a lease expiry; the holder is the live (not deleted) ticket with the
lowest version number. A process holds the lock once no live ticket below its own
remains, and releases it by deleting its ticket.

Why it excludes, on any database-backed registry (what ``mlflow server`` runs on):

* MLflow numbers a new version ``max(version) + 1`` inside the create's
  transaction, and the primary key (name, version) refuses a duplicate (the
  server retries the create on that conflict). Deleting a version only marks its
  row deleted, so that maximum never goes down: numbers are never reused.
* Hence when ticket ``b > a`` exists, ``a`` was committed before ``b`` was
  numbered (the first committed row numbered ``>= a`` can only be ``a`` itself).
  A process that lists no live ticket below its own ``b`` therefore knows that
  every earlier ticket was released or taken over, and every later ticket's owner
  will see ``b`` ahead of it until ``b`` is deleted.
* Every deletion names one exact, never-reused version. A take-over removes the
  dead ticket it judged and nothing else: it cannot break a fresh holder, and two
  waiters taking over the same dead ticket is harmless (the second finds it
  gone). (A rename or delete of a single lock object by name, the other way to
  build this on MLflow, can hit a lock created after the stale one was judged.)

Dead holders: a daemon thread renews the ticket's lease every quarter lease,
while waiting and while holding. A waiter that finds a ticket ahead whose lease
ran out deletes it. Expiry compares two hosts' wall clocks: they must agree to
well within the lease (NTP does). Two processes can hold the lock together only
when a live holder stalled for three quarters of a lease; its renewal then finds
its ticket gone and the promotion raises :class:`RegistryError` at the end
(check the champion). A retried create that made two tickets for one process is
noticed by the token, and the extra one deleted.

Never delete the lock model while promotions may run (its numbers would start
again at 1); to clear a dead holder at once, delete its version instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dubops.registry.lock import process_owner
from dubops.registry.store import RegistryError, registry_client
from dubops.registry.timestamps import local_iso

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

    from dubops.config import DubOpsConfig

logger = logging.getLogger(__name__)

LOCK_SUFFIX = ".promotion-lock"
TAG_OWNER = "dubops.lock.owner"
TAG_TOKEN = "dubops.lock.token"
TAG_EXPIRES = "dubops.lock.expires"  # unix seconds, the owner's clock
TAG_HELD_SINCE = "dubops.lock.held_since"  # set when the ticket reaches the head
# A version needs a source; the server accepts an absolute path under a scheme of its own.
_SOURCE = "dubops-lock:/promotion"
_GONE = "RESOURCE_DOES_NOT_EXIST"
_POLL_S = (0.1, 1.0)  # first and longest pause between looks at the queue


@dataclass(frozen=True)
class Ticket:
    """One process's place in the queue: a version of the lock model."""

    model: str
    version: int
    owner: str
    token: str
    expires: float
    queued_at: float
    held_since: str | None = None

    @classmethod
    def from_version(cls, version: Any, lease_s: float) -> Ticket:
        tags = version.tags or {}
        queued_at = (version.creation_timestamp or 0) / 1000
        try:
            expires = float(tags[TAG_EXPIRES])
        except (KeyError, ValueError):  # not one of ours: give it one lease from creation
            expires = queued_at + lease_s
        return cls(
            model=version.name,
            version=int(version.version),
            owner=tags.get(TAG_OWNER, "an unknown process"),
            token=tags.get(TAG_TOKEN, ""),
            expires=expires,
            queued_at=queued_at,
            held_since=tags.get(TAG_HELD_SINCE),
        )


def lock_model_name(config: DubOpsConfig) -> str:
    return f"{config.registry.model_name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def server_lock(config: DubOpsConfig) -> Iterator[Ticket]:
    """Hold the promotion lock through the tracking server for the block (see module doc).

    Raises:
        RegistryError: the lock stayed held for ``registry.lock_timeout_s`` (the
            message names the holder and the way out), or this process's ticket was
            taken over while it held the lock.
    """
    client = registry_client(config)
    settings = config.registry
    model = lock_model_name(config)
    created = _take_ticket(client, model, settings.model_name, settings.lock_lease_s)
    ticket = Ticket.from_version(created, settings.lock_lease_s)
    lease = _Lease(client, ticket, settings.lock_lease_s)
    lease.start()
    try:
        _wait_for_turn(client, ticket, config)
        held = dataclasses.replace(ticket, held_since=local_iso())
        client.set_model_version_tag(model, str(ticket.version), TAG_HELD_SINCE, held.held_since)
        yield held
    finally:
        lost = lease.stop()
        _release(client, ticket, settings.lock_lease_s)
    if lost:
        raise RegistryError(
            f"the promotion lock's ticket v{ticket.version} of {model!r} was taken over while "
            f"this process held it (it renewed nothing for registry.lock_lease_s="
            f"{settings.lock_lease_s:g} s); another promotion may have run meanwhile: check "
            "`dubops registry show champion` and its history"
        )


def _take_ticket(client: MlflowClient, model: str, name: str, lease_s: float) -> ModelVersion:
    """Queue a new ticket; the lock model is made on the first promotion ever, not each time."""
    from mlflow.exceptions import MlflowException

    def create() -> ModelVersion:
        return client.create_model_version(
            model,
            _SOURCE,
            tags={
                TAG_OWNER: process_owner(),
                TAG_TOKEN: secrets.token_hex(16),
                TAG_EXPIRES: _expiry(lease_s),
            },
            await_creation_for=0,
        )

    try:
        return create()
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    _create_lock_model(client, model, name)
    return create()


def _create_lock_model(client: MlflowClient, model: str, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            model,
            tags={"dubops.lock": "promotion"},
            description=f"The promotion lock of {name!r}: each version is one process's "
            "ticket; the lowest live one holds it (dubops.registry.server_lock). Delete a "
            "dead holder's version to free it, never this model.",
        )
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another host made it first
            raise


def _wait_for_turn(client: MlflowClient, ticket: Ticket, config: DubOpsConfig) -> None:
    """Return once no live ticket is ahead; take over expired ones; time out with a message."""
    settings = config.registry
    deadline = time.monotonic() + settings.lock_timeout_s
    pause, longest = _POLL_S
    announced = False
    while True:
        queue = [
            Ticket.from_version(v, settings.lock_lease_s)
            for v in client.search_model_versions(f"name='{ticket.model}'")
        ]
        for extra in [t for t in queue if t.token == ticket.token and t.version != ticket.version]:
            _delete(client, extra)  # a retried create made it: ours, so no place to keep
        if not any(t.version == ticket.version for t in queue):
            raise RegistryError(
                f"this process's ticket v{ticket.version} of {ticket.model!r} was taken over "
                f"while it waited (its lease, registry.lock_lease_s={settings.lock_lease_s:g} "
                "s, was not renewed in time); retry"
            )
        now = time.time()
        ahead = sorted((t for t in queue if t.version < ticket.version), key=lambda t: t.version)
        for stale in [t for t in ahead if t.expires < now]:
            logger.warning(
                "promotion lock: %s (ticket v%d) stopped renewing its lease %.1f s ago; "
                "taking over",
                stale.owner,
                stale.version,
                now - stale.expires,
            )
            _delete(client, stale)
        live = [t for t in ahead if t.expires >= now]
        if not live:
            return
        if time.monotonic() > deadline:
            raise RegistryError(_timeout_message(live[0], len(live), config))
        if not announced:
            logger.info("waiting for the promotion lock held by %s", live[0].owner)
            announced = True
        time.sleep(pause)
        pause = min(pause * 1.5, longest)


def _timeout_message(holder: Ticket, ahead: int, config: DubOpsConfig) -> str:
    settings = config.registry
    state = (
        f"has held it since {holder.held_since}"
        if holder.held_since
        else f"has waited for it since {local_iso(holder.queued_at)}"
    )
    queue = f" ({ahead} tickets ahead of this one)" if ahead > 1 else ""
    return (
        f"another promotion holds the promotion lock of {settings.model_name!r}: {holder.owner} "
        f"{state}{queue}; waited {settings.lock_timeout_s:g} s. Retry once it is done, or raise "
        f"registry.lock_timeout_s. If that process is gone, its lease (registry.lock_lease_s) "
        f"runs out by {local_iso(holder.expires)} and the next promotion takes over; "
        f"to free it now, delete version {holder.version} of the registered model "
        f"{holder.model!r} (not the model itself)"
    )


class _Lease(threading.Thread):
    """Renews a ticket's expiry every quarter lease until stopped; notes a ticket gone."""

    def __init__(self, client: MlflowClient, ticket: Ticket, lease_s: float) -> None:
        super().__init__(name=f"dubops-lease-{ticket.model}-v{ticket.version}", daemon=True)
        self._client, self._ticket, self._lease_s = client, ticket, lease_s
        self._done = threading.Event()
        self.lost = False

    def run(self) -> None:
        from mlflow.exceptions import MlflowException

        t = self._ticket
        while not self._done.wait(self._lease_s / 4):
            try:
                self._client.set_model_version_tag(
                    t.model, str(t.version), TAG_EXPIRES, _expiry(self._lease_s)
                )
            except MlflowException as exc:
                if exc.error_code == _GONE:
                    logger.error(
                        "promotion lock: ticket v%d of %r was taken over", t.version, t.model
                    )
                    self.lost = True
                    return
                logger.warning("promotion lock: could not renew the lease (%s); retrying", exc)
            except Exception as exc:  # a network error: the next beat tries again
                logger.warning("promotion lock: could not renew the lease (%s); retrying", exc)

    def stop(self) -> bool:
        """Stop renewing; whether the ticket was found taken over."""
        self._done.set()
        self.join(timeout=10)  # a renewal stuck in a request must not hold up the release
        return self.lost


def _release(client: MlflowClient, ticket: Ticket, lease_s: float) -> None:
    """Delete our ticket; never raises (an unreleased ticket expires after one lease)."""
    try:
        _delete(client, ticket, quiet=False)
    except Exception as exc:
        logger.warning(
            "promotion lock: could not release ticket v%d of %r (%s); it blocks the next "
            "promotion until its lease ends at %s",
            ticket.version,
            ticket.model,
            exc,
            local_iso(time.time() + lease_s),
        )


def _delete(client: MlflowClient, ticket: Ticket, quiet: bool = True) -> None:
    """Delete exactly this ticket; one that is gone already (taken over, retried) is fine."""
    from mlflow.exceptions import MlflowException

    try:
        client.delete_model_version(ticket.model, str(ticket.version))
    except MlflowException as exc:
        if exc.error_code != _GONE:
            raise
        if not quiet:
            logger.warning(
                "promotion lock: ticket v%d of %r was gone at release", ticket.version, ticket.model
            )


def _expiry(lease_s: float) -> str:
    return f"{time.time() + lease_s:.3f}"
