"""The Reference Footage Library: its Feast repository (``repo/``: entity, one feature view
per modality, Milvus Lite online store), the build that fills it (``build``) and the
retrieval behind one interface with three backends (``retrieval``: numpy, pymilvus, Feast).

Part of the `dubops` distribution, mapped as `dubops.feature_store`.
"""
