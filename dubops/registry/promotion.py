"""Promote a version to ``champion`` and roll back to the previous one, one at a time.

Both hold the registry's promotion lock (:mod:`dubops.registry.lock`: a file
lock for a local store, a ticket queue on the tracking server for a remote one,
so promotions from any host take turns) and re-read the registry inside it, so
decisions taken before the lock (a gate run against the champion of that moment)
are checked again against the champion of now: ``expected_champion`` refuses a
promotion when the champion changed in between, ``require_gate`` runs the gate
inside the lock.

The champion history is a stack in the registered model's tag
``dubops.champion_history`` (JSON, oldest first): a promotion pushes, a rollback
pops, so rolling back twice goes back two champions, and a restarted process
reads the same history. The history is written before the alias moves, so it
always names the champion that was meant, even when a process dies in between.
Such a death leaves the stack's top naming another version than the alias (the
history runs one step ahead); every reader tolerates that (:func:`settled_history`):

* an interrupted promotion leaves a top entry whose ``previous`` is the alias's
  version (the champion it meant to replace, still in place): it never took
  effect, so promote and rollback drop it before they push or pop, and listings
  mark it ``pending``;
* an interrupted rollback leaves the popped stack (or, when rollback had to
  restore an earlier champion, an entry with ``action: "rollback"``) whose top is
  the champion it meant to restore: the next rollback finishes it (the loop pops
  only entries naming the alias, so it lands on that top), and a promotion pushes
  over it as usual.

Entries carry ``action`` (``promote`` or ``rollback``); older entries without it
count as promotions.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from dubops.registry.lock import process_owner, promotion_lock
from dubops.registry.store import (
    CHALLENGER,
    CHAMPION,
    RegistryError,
    alias_version,
    read_history,
    registry_client,
    require_model,
    resolve_version,
    version_exists,
    write_history,
)
from dubops.registry.timestamps import local_iso

if TYPE_CHECKING:
    from dubops.config import DubOpsConfig
    from dubops.registry.gate import GateDecision

logger = logging.getLogger(__name__)


class PromotionConflictError(RegistryError):
    """The champion changed between the caller's check and the promotion."""


class GateRefusedError(RegistryError):
    """The gate, run inside the lock, refused the version."""

    def __init__(self, decision: GateDecision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


_UNSET: Any = object()


def promote(
    config: DubOpsConfig,
    version: int,
    reason: str = "",
    *,
    expected_champion: int | None = _UNSET,
    require_gate: bool = False,
) -> None:
    """Point ``champion`` at ``version`` and push it on the champion history.

    Args:
        config: ``registry`` (model name, history limit, lock) and ``tracking``.
        version: the version to promote.
        reason: kept in the history (e.g. the gate's verdict).
        expected_champion: the champion the caller decided against (None: none);
            when given and the champion is another one by now, nothing changes.
        require_gate: run the promotion gate inside the lock and promote only on pass.

    Raises:
        RegistryError: an unknown version or an empty registry.
        PromotionConflictError: the champion is no longer ``expected_champion``.
        GateRefusedError: ``require_gate`` and the gate refused (``.decision`` has the table).
    """
    client = registry_client(config)
    name = config.registry.model_name
    with promotion_lock(config):
        target = int(resolve_version(client, name, version).version)
        current = alias_version(client, name, CHAMPION)
        if expected_champion is not _UNSET and current != expected_champion:
            raise PromotionConflictError(
                f"the champion of {name!r} is {_name(current)} now, not "
                f"{_name(expected_champion)} as when v{target} was checked; run the gate again"
            )
        if current == target:
            logger.info("v%d is the champion of %s already", target, name)
            return
        if require_gate:
            from dubops.registry.gate import run_gate

            decision = run_gate(config, target)
            if not decision.passed:
                raise GateRefusedError(decision)
            reason = reason or decision.reason
        history = settled_history(read_history(client, name), current)
        history.append(_entry(target, current, reason or "promoted"))
        # History first: a death before the alias moves leaves the intended champion named.
        write_history(client, name, history, config.registry.history_limit)
        client.set_registered_model_alias(name, CHAMPION, str(target))
        client.set_model_version_tag(name, str(target), "promoted_at", local_iso())
        if alias_version(client, name, CHALLENGER) == target:
            # The challenger is the candidate awaiting a decision; this one has had it.
            client.delete_registered_model_alias(name, CHALLENGER)
    logger.info("promoted %s v%d to champion (was %s)", name, target, _name(current))


def rollback(config: DubOpsConfig, reason: str = "") -> int:
    """Give ``champion`` back to the previous champion; returns its version.

    Versions deleted from the registry since they were champion are skipped.

    Raises:
        RegistryError: no champion, or no earlier champion to return to.
    """
    client = registry_client(config)
    name = config.registry.model_name
    with promotion_lock(config):
        require_model(client, name)
        current = alias_version(client, name, CHAMPION)
        if current is None:
            raise RegistryError(f"{name!r} has no champion to roll back from")
        history = settled_history(read_history(client, name), current)
        popped: list[dict[str, Any]] = []
        while history and int(history[-1]["version"]) == current:
            popped.append(history.pop())
        while history and not version_exists(client, name, int(history[-1]["version"])):
            logger.warning("v%s is no longer registered; skipped", history[-1]["version"])
            history.pop()
        if history:
            target = int(history[-1]["version"])
        else:
            earlier = [p.get("previous") for p in popped if p.get("previous") is not None]
            target = next((int(v) for v in earlier if version_exists(client, name, int(v))), -1)
            if target < 0:
                raise RegistryError(
                    f"{name!r} has no earlier champion than v{current} in its history; "
                    "promote a version instead (`dubops registry promote VERSION`)"
                )
            history.append(_entry(target, current, "restored by rollback", action="rollback"))
        # History first, as in promote: its top is the champion this rollback means.
        write_history(client, name, history, config.registry.history_limit)
        client.set_registered_model_alias(name, CHAMPION, str(target))
        client.set_model_version_tag(name, str(current), "rolled_back_at", local_iso())
        if reason:
            client.set_model_version_tag(name, str(current), "rolled_back_reason", reason)
    logger.info("rolled %s back from v%d to v%d", name, current, target)
    return target


def champion_history(config: DubOpsConfig) -> list[dict[str, Any]]:
    """The champion stack as stored, oldest first (what rollback walks back through).

    Its top may name a version that is not the alias yet (see the module doc);
    :func:`settled_history` drops an interrupted promotion.
    """
    client = registry_client(config)
    require_model(client, config.registry.model_name)
    return read_history(client, config.registry.model_name)


def pending_promotion(history: list[dict[str, Any]], champion: int | None) -> bool:
    """Whether the top entry is a promotion from ``champion`` whose alias never moved.

    ``champion`` is the alias's version now (None: no champion, as before a first
    promotion that was interrupted).
    """
    if not history:
        return False
    top = history[-1]
    previous = top.get("previous")
    return (
        top.get("action", "promote") == "promote"
        and int(top["version"]) != champion
        and (None if previous is None else int(previous)) == champion
    )


def settled_history(history: list[dict[str, Any]], champion: int | None) -> list[dict[str, Any]]:
    """The history without the promotions that were written but never moved the alias.

    ``champion`` is the alias's version now. An interrupted rollback's entries are
    kept: its top is the champion it meant to restore, where the next rollback lands.
    """
    history = list(history)
    while pending_promotion(history, champion):
        dropped = history.pop()
        logger.warning(
            "champion history: v%s was recorded but its promotion never moved the alias "
            "(the process stopped in between); dropped",
            dropped["version"],
        )
    return history


def _entry(
    version: int, previous: int | None, reason: str, action: str = "promote"
) -> dict[str, Any]:
    return {
        "version": version,
        "previous": previous,
        "action": action,
        "at": local_iso(),
        "reason": reason[:300],
        "by": process_owner(),
    }


def _name(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
