"""KServe model server and BentoML service: thin adapters over dubops.inference.DubbingPipeline.

Part of the `dubops` distribution (mapped as `dubops.serving`); filled by later issues.
"""
