"""Inference: the one path every caller dubs through.

``DubbingPipeline`` (reasoner -> extractors -> retrieval -> generator -> vocoder
-> mux), ``DubRequest`` (one clip to dub, validated) and ``DubResult`` (the
speech and what decided it). Importing this package loads no training code, no
orchestrator and no data-validation library: a server imports only what it runs.
"""

from dubops.inference.pipeline import DubbingPipeline
from dubops.inference.request import DubRequest
from dubops.inference.result import DubResult

__all__ = ["DubRequest", "DubResult", "DubbingPipeline"]
