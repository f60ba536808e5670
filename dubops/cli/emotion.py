"""``dubops train extractors``: train the four emotion extractors."""

from __future__ import annotations


def train_extractors() -> None:
    """Train the scene, face, text and audio emotion extractors (not built yet)."""
    raise NotImplementedError
