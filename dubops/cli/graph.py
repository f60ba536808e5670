"""``dubops train graph``: the graph-synthesizer stage."""

from __future__ import annotations


def train_graph() -> None:
    """Train the progressive emotion graph with the ControlNet (not built yet)."""
    raise NotImplementedError
